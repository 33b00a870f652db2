"""PyAV <-> VapourSynth glue: what a video file holds, and the file as a clip (writing
files is :mod:`.encode`'s).

A file is read through BestSource (:mod:`.source`), which indexes it once and then seeks
frame-exactly; PyAV reads what the container says (streams, frame rate, the first frame's
format and colour). Frames are numbered in presentation order. ``VideoInfo.pts[n]`` is
frame n's timestamp as the file has it, and every file written here gives frame n that
same timestamp (less a constant shift when a range is cut out), so a variable frame rate
and the audio sync survive unchanged.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

from . import source

core = vs.core


class VideoError(Exception):
    """A file that cannot be read or written as asked; the message says why in one line."""


#: The largest frame, in pixels, of an input read: an 8K scan's 8192 x 8192 at most. The
#: container declares the size before a frame is decoded, and a frame costs its size many
#: times over (BestSource keeps the frames of a seek's preroll: 2 GiB at this size in 8-bit
#: 4:2:0, 8 GiB in 16-bit 4:4:4), so a small file declaring huge frames is refused first.
MAX_FRAME_PIXELS = 8192 * 8192

_SUBSAMPLING = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440", (2, 0): "411", (2, 2): "410"}
# VapourSynth's RGB planes are R, G, B; FFmpeg's planar RGB (gbrp) is G, B, R.
_AV_PLANE = {vs.RGB: (2, 0, 1)}
# FFmpeg colour enums that mean "unspecified" (ITU-T H.273 code 2, range 0).
_UNSPECIFIED = 2


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, from its index (:mod:`.source`) and its container.

    ``pts``: each frame's presentation timestamp, in units of ``time_base`` seconds; ``fps``: the
    average frame rate; ``pix_fmt``: the planar FFmpeg format frames are read in;
    ``props``: VapourSynth colour props (``_Matrix``, ``_Range``...) the file specifies;
    ``audio``: indexes of its audio streams; ``retimed``: the file's timestamps were missing
    or out of order, so ``pts`` is a constant-rate count instead; ``index``: where the
    file's index is kept (None for a clip's timing, :func:`clip_info`).
    """

    path: Path
    width: int
    height: int
    pts: tuple[int, ...]
    time_base: Fraction
    fps: Fraction
    pix_fmt: str
    props: Mapping[str, int]
    sample_aspect_ratio: Fraction | None
    audio: tuple[int, ...]
    interlaced: bool
    retimed: bool
    index: Path | None = None

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @property
    def variable_rate(self) -> bool:
        """Frame durations differ by more than a tick of the time base."""
        steps = np.diff(np.asarray(self.pts, dtype=np.int64))
        return steps.size > 1 and int(steps.max() - steps.min()) > 1

    def shift(self, first: int) -> int:
        """Timestamp subtracted from every output timestamp when writing from frame ``first``.

        Zero for a whole file (its timestamps are kept as they are), else frame ``first``'s,
        so that an excerpt starts at 0.
        """
        return self.pts[first] if first > 0 else 0

    def seconds(self, n: int) -> Fraction | None:
        """Frame n's timestamp in seconds; None for n = num_frames (open end)."""
        return self.pts[n] * self.time_base if n < self.num_frames else None


def _planar(fmt: av.VideoFormat) -> tuple[str, int, int, int, int]:
    """(planar pix_fmt, family, bits, log2 horizontal, vertical chroma subsampling).

    The same colour family, subsampling and depth as ``fmt`` where FFmpeg has such a planar
    format, so that a YUV file's luma reaches VapourSynth untouched.
    """
    components = [c for c in fmt.components if not c.is_alpha]
    bits = max(c.bits for c in components)
    bits = 8 if bits <= 8 else min(16, bits + bits % 2)
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer:
        family, ssw, ssh = vs.RGB, 0, 0
    elif len(components) == 1:
        family, ssw, ssh = vs.GRAY, 0, 0
    else:
        family = vs.YUV
        ssw = (64 // fmt.chroma_width(64)).bit_length() - 1
        ssh = (64 // fmt.chroma_height(64)).bit_length() - 1
    for depth in (bits, 16):
        name = pix_fmt_name(family, depth, ssw, ssh)
        if name is not None:
            return name, family, depth, ssw, ssh
    return "yuv444p16le", vs.YUV, 16, 0, 0


def pix_fmt_name(family: int, bits: int, ssw: int, ssh: int) -> str | None:
    """The FFmpeg planar pixel format of a VapourSynth layout, or None if FFmpeg has none."""
    suffix = "" if bits == 8 else f"{bits}le"
    if family == vs.GRAY:
        name = "gray" + suffix
    elif family == vs.RGB:
        name = "gbrp" + suffix
    elif (ssw, ssh) in _SUBSAMPLING:
        name = f"yuv{_SUBSAMPLING[ssw, ssh]}p{suffix}"
    else:
        return None
    try:
        av.VideoFormat(name)
    except ValueError:
        return None
    return name


def _vs_format(pix_fmt: str) -> vs.VideoFormat:
    _, family, bits, ssw, ssh = _planar(av.VideoFormat(pix_fmt))
    return core.query_video_format(family, vs.INTEGER, bits, ssw, ssh)


def _colour_props(frame: av.VideoFrame) -> dict[str, int]:
    """The colour props a decoded frame specifies, in VapourSynth's terms."""
    props = {}
    for prop, value in (("_Matrix", frame.colorspace), ("_Transfer", frame.color_trc),
                        ("_Primaries", frame.color_primaries)):
        if value not in (None, _UNSPECIFIED) and 0 <= int(value) <= 22:
            props[prop] = int(value)
    # FFmpeg: 1 limited ("MPEG"), 2 full ("JPEG"); the yuvj formats are full range by name.
    if frame.format.name.startswith("yuvj") or frame.color_range == 2:
        props["_Range"] = vs.RANGE_FULL
    elif frame.color_range == 1:
        props["_Range"] = vs.RANGE_LIMITED
    return props


def check_input(path: Path) -> None:
    """Raise VideoError unless ``path`` is an existing file (what is in it is for :func:`probe`)."""
    if not path.is_file():
        raise VideoError(f"input {str(path)!r} does not exist" if not path.exists()
                         else f"input {str(path)!r} is not a file")


def _open_input(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    try:
        container = av.open(str(path))
    except av.EOFError:
        raise VideoError(f"{str(path)!r} has no video frames (it ends before the first)") from None
    except av.FFmpegError as e:
        raise VideoError(f"cannot read {str(path)!r} as a video: {ffmpeg_reason(e)}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{str(path)!r} has no video stream")
    stream = container.streams.video[0]
    if stream.width * stream.height > MAX_FRAME_PIXELS:
        container.close()
        raise VideoError(f"{str(path)!r} has {stream.width}x{stream.height} frames, more than the "
                         f"{MAX_FRAME_PIXELS // 10**6} megapixels vsexcolor reads: scale it down first")
    stream.thread_type = "AUTO"  # frame threads: same pictures, decoded faster
    return container, stream


def probe(path: str | os.PathLike[str], progress: bool = True) -> VideoInfo:
    """``path``'s frame count and timestamps from its index, its format from its first frame.

    The first probe of a file indexes it, decoding it once: that gives the exact count of
    frames a decoder returns. The index is kept (:mod:`.source`), so a later probe of the
    same, unchanged file decodes one frame (twice: PyAV's, and BestSource's against its
    index). A still image is a clip of one frame. ``progress``: a bar while it indexes.

    Raises:
        VideoError: missing, unreadable, without a video stream, or without frames; or no
            folder for its index can be written.
    """
    path = Path(path)
    check_input(path)
    container, stream = _open_input(path)
    with container:
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode {str(path)!r}: {ffmpeg_reason(e)}") from None
        audio = tuple(s.index for s in container.streams.audio)
        rate = stream.average_rate or stream.guessed_rate
        sar = stream.sample_aspect_ratio
    if first is None:
        raise VideoError(f"{str(path)!r} has no video frames")
    try:
        indexed = source.index(path, source.index_file(path), progress)
    except (vs.Error, OSError) as e:
        raise VideoError(f"cannot index {str(path)!r}: {_vs_reason(e)}") from None
    pts, time_base = _filled(list(indexed.pts)), indexed.time_base
    if not pts:
        raise VideoError(f"{str(path)!r} has no video frames")
    retimed = any(p is None for p in pts) or any(b <= a for a, b in zip(pts, pts[1:]))
    if not rate:
        span = (pts[-1] - pts[0]) * time_base if not retimed and len(pts) > 1 else 0
        rate = Fraction(len(pts) - 1) / span if span else Fraction(25)
    if retimed:
        pts = [round(n / (rate * time_base)) for n in range(len(pts))]
    return VideoInfo(
        path=path, width=indexed.clip.width, height=indexed.clip.height, pts=tuple(pts),
        time_base=time_base, fps=Fraction(rate), pix_fmt=_planar(first.format)[0],
        props=_colour_props(first), sample_aspect_ratio=Fraction(sar) if sar else None, audio=audio,
        interlaced=bool(first.interlaced_frame), retimed=retimed, index=indexed.index)


def _filled(pts: list[int | None]) -> list[int | None]:
    """Timestamps with the gaps a decoder left filled in from the known ones around them
    (spaced evenly between two, or the usual step on from the nearest at either end).

    Some FFmpeg builds leave the last frames of an MPEG program stream (or a raw stream's
    first) without a timestamp where others give them one: filled, they are what PyAV's
    build gives, and the rest of the file keeps its own. Unchanged where no two neighbouring
    frames have one.
    """
    known = [(n, t) for n, t in enumerate(pts) if t is not None]
    steps = sorted(b - a for (m, a), (n, b) in zip(known, known[1:]) if n == m + 1)
    if len(known) == len(pts) or not steps:
        return pts
    step = steps[len(steps) // 2]
    out = list(pts)
    for (m, a), (n, b) in zip(known, known[1:]):
        for k in range(m + 1, n):
            out[k] = a + round((k - m) * (b - a) / (n - m))
    (head, t0), (tail, t1) = known[0], known[-1]
    out[:head] = [t0 - (head - k) * step for k in range(head)]
    out[tail + 1:] = [t1 + (k - tail) * step for k in range(tail + 1, len(pts))]
    return out


def clip_info(clip: vs.VideoNode, source: Path, audio: Path | None = None) -> VideoInfo:
    """A VideoInfo for writing ``clip`` (a script's output, made at ``source``): constant
    frame rate timestamps from 0, and the audio streams of ``audio`` if given.

    Raises:
        VideoError: the clip has no constant frame rate, size or format; ``audio`` cannot
            be read or has no audio.
    """
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise VideoError("the clip must have a constant format and size (add a resize)")
    if clip.fps == 0:
        raise VideoError("the clip has no constant frame rate; set one with std.AssumeFPS")
    streams: tuple[int, ...] = ()
    if audio is not None:
        check_input(audio)
        try:
            with av.open(str(audio)) as container:
                streams = tuple(s.index for s in container.streams.audio)
        except av.FFmpegError as e:
            raise VideoError(f"cannot read {str(audio)!r} for its audio: {ffmpeg_reason(e)}") from None
        if not streams:
            raise VideoError(f"{str(audio)!r} has no audio stream")
    fps = Fraction(clip.fps.numerator, clip.fps.denominator)
    name = pix_fmt_name(clip.format.color_family, clip.format.bits_per_sample, clip.format.subsampling_w,
                        clip.format.subsampling_h) or "yuv444p16le"
    return VideoInfo(path=audio or source, width=clip.width, height=clip.height, pts=tuple(range(clip.num_frames)),
                     time_base=1 / fps, fps=fps, pix_fmt=name, props={}, sample_aspect_ratio=None, audio=streams,
                     interlaced=False, retimed=False)


def plane_order(pix_fmt: str) -> tuple[int, ...]:
    """For each VapourSynth plane, the index of the FFmpeg plane holding it."""
    fmt = _vs_format(pix_fmt)
    return _AV_PLANE.get(fmt.color_family, tuple(range(fmt.num_planes)))


def open_clip(info: VideoInfo) -> vs.VideoNode:
    """The file as a VapourSynth clip, read through the index :func:`probe` made: frame n is
    the n-th decoded frame, its pixels untouched (converted only where BestSource's format is
    not ``info.pix_fmt``'s: another depth). The frames carry ``info``'s colour props and
    aspect ratio and no others, and the clip has ``info``'s frame rate.

    A file that has lost frames since :func:`probe` (replaced meanwhile) fails at the first
    frame it lacks, naming the change.

    Raises:
        VideoError: the file cannot be read any more.
    """
    fmt = _vs_format(info.pix_fmt)
    chroma = (info.width >> fmt.subsampling_w) * (info.height >> fmt.subsampling_h)
    frame_bytes = (info.width * info.height + (fmt.num_planes - 1) * chroma) * fmt.bytes_per_sample
    try:
        clip = source.open_indexed(info.path, info.index or source.index_file(info.path), frame_bytes)
    except (vs.Error, OSError) as e:
        raise VideoError(f"cannot read {str(info.path)!r}: {_vs_reason(e)}") from None
    if clip.format.id != fmt.id:
        clip = core.resize.Point(clip, format=fmt.id)
    if clip.num_frames < info.num_frames:
        clip += _failing(clip, info.num_frames - clip.num_frames,
                         f"{str(info.path)!r} ended after {clip.num_frames} frames, not {info.num_frames}; "
                         "has it changed?")
    # BestSource's props (field order, chroma siting, picture types...) would change how
    # frames are converted: the clip carries what the CLI has always given it.
    clip = core.std.RemoveFrameProps(clip[:info.num_frames])
    clip = core.std.AssumeFPS(clip, fpsnum=info.fps.numerator, fpsden=info.fps.denominator)
    sar = info.sample_aspect_ratio
    if sar:
        clip = core.std.SetFrameProps(clip, _SARNum=sar.numerator, _SARDen=sar.denominator)
    clip = core.std.SetFrameProps(clip, **info.props) if info.props else clip
    # BestSource keeps the decoded frames a seek needs below this node. VapourSynth's cache
    # of it held them again, and grew by about a frame per frame rendered in a film with a
    # reference every few frames (263 MiB of a 1500-shot 320x180 film; benchmarks/shots_memory.py).
    core.std.SetVideoCache(clip, 0)
    return clip


def _failing(like: vs.VideoNode, length: int, message: str) -> vs.VideoNode:
    """``length`` frames like ``like``'s whose every request fails with ``message``."""
    def fail(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        raise VideoError(message)

    blank = core.std.BlankClip(like, length=length)
    return core.std.ModifyFrame(blank, blank, fail)


def _vs_reason(error: Exception) -> str:
    """BestSource's or the system's error in a few words, without the function's name."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error).strip().removeprefix("VideoSource: ").rstrip(".")


@contextlib.contextmanager
def ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages meanwhile, for our own; FFmpeg prints nothing itself."""
    before = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as log:
            yield log
    finally:
        av.logging.set_level(before)


def ffmpeg_reason(error: Exception, log: Sequence[tuple[int, str, str]] = ()) -> str:
    """An FFmpeg error in a few words: without PyAV's errno prefix, with FFmpeg's last message."""
    reason = error.strerror.rstrip(".") if isinstance(error, av.FFmpegError) and error.strerror else str(error)
    if log:
        _, source, message = log[-1]
        reason += f" ({source}: {message.strip()})"
    return reason
