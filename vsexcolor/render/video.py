"""PyAV <-> VapourSynth glue: a video file as a clip, clip frames into a file, and remuxing.

A file is read through BestSource (:mod:`.source`), which indexes it once and then seeks
frame-exactly; PyAV reads what the container says (streams, frame rate, the first frame's
format and colour). Frames are numbered in presentation order. ``VideoInfo.pts[n]`` is
frame n's timestamp as the file has it, and every file written here gives frame n that
same timestamp (less a constant shift when a range is cut out), so a variable frame rate
and the audio sync survive unchanged.
"""
from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

from . import source

core = vs.core


class VideoError(Exception):
    """A file that cannot be read or written as asked; the message says why in one line."""


@dataclass(frozen=True)
class Codec:
    """An output codec: the FFmpeg encoder, its default CRF (None: lossless) and options."""

    encoder: str
    crf: int | None
    options: Mapping[str, str] = field(default_factory=dict)


#: ``--codec`` choices. Their threads are fixed: an encoder's output depends on how many it
#: uses, and a part must come out the same on every machine that may encode it.
CODECS: dict[str, Codec] = {
    "h264": Codec("libx264", 18, {"threads": "4"}),
    # x265 logs to stderr itself; its rows run in parallel within one frame (WPP).
    "h265": Codec("libx265", 20, {"x265-params": "log-level=error:pools=4:frame-threads=1"}),
    # The archival settings (as in the Library of Congress and IETF CELLAR guidance):
    # version 3, every frame a keyframe, a CRC per slice to detect damage; 4 slices.
    "ffv1": Codec("ffv1", None, {"level": "3", "g": "1", "slicecrc": "1", "slices": "4", "threads": "4"}),
}

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
# libx265 makes up the decoding timestamps of a stream shorter than its B-frame delay (it
# reads them uninitialised: one- and two-frame scenes come out with nonsense), so the packets
# of a scene this short are held back and timed from their presentation order instead.
_HOLD_FRAMES = 16
# No random segment ID, no date, no library version in the files we join: the same frames
# and audio give the same bytes, on any machine, in any run.
_BITEXACT = {"fflags": "+bitexact"}


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
        raise VideoError(f"cannot read {str(path)!r} as a video: {_reason(e)}") from None
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
            raise VideoError(f"cannot decode {str(path)!r}: {_reason(e)}") from None
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
            raise VideoError(f"cannot read {str(audio)!r} for its audio: {_reason(e)}") from None
        if not streams:
            raise VideoError(f"{str(audio)!r} has no audio stream")
    fps = Fraction(clip.fps.numerator, clip.fps.denominator)
    name = pix_fmt_name(clip.format.color_family, clip.format.bits_per_sample, clip.format.subsampling_w,
                        clip.format.subsampling_h) or "yuv444p16le"
    return VideoInfo(path=audio or source, width=clip.width, height=clip.height, pts=tuple(range(clip.num_frames)),
                     time_base=1 / fps, fps=fps, pix_fmt=name, props={}, sample_aspect_ratio=None, audio=streams,
                     interlaced=False, retimed=False)


def _plane_order(pix_fmt: str) -> tuple[int, ...]:
    """For each VapourSynth plane, the index of the FFmpeg plane holding it."""
    fmt = _vs_format(pix_fmt)
    return _AV_PLANE.get(fmt.color_family, tuple(range(fmt.num_planes)))


def _plane_array(plane: av.video.plane.VideoPlane, fmt: av.VideoFormat) -> np.ndarray:
    """A writable view of a plane's pixels (line padding cut off)."""
    dtype = np.dtype(np.uint8 if max(c.bits for c in fmt.components) <= 8 else "<u2")
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    return rows[:, :plane.width]


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
    return core.std.SetFrameProps(clip, **info.props) if info.props else clip


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


def encodable(clip: vs.VideoNode, codec: Codec) -> tuple[vs.VideoNode, str]:
    """``clip`` in a pixel format ``codec`` takes, and that format's FFmpeg name.

    The clip's own format when the encoder takes it (no conversion at all); else the same
    layout at the nearest depth it takes, else 4:4:4 YUV (BT.709 from RGB), else 4:2:0.
    """
    try:
        supported = {f.name for f in av.Codec(codec.encoder, "w").video_formats or ()}
    except av.codec.codec.UnknownCodecError:
        raise VideoError(f"this PyAV build has no {codec.encoder!r} encoder") from None
    fmt = clip.format
    bits = fmt.bits_per_sample
    depths = [bits, *range(bits + 2, 17, 2), *range(bits - 2, 7, -2)]
    layouts = [(fmt.color_family, fmt.subsampling_w, fmt.subsampling_h), (vs.YUV, 0, 0), (vs.YUV, 1, 1)]
    for family, ssw, ssh in layouts:
        for depth in depths:
            name = pix_fmt_name(family, depth, ssw, ssh)
            if name in supported:
                if (family, depth, ssw, ssh) == (fmt.color_family, bits, fmt.subsampling_w, fmt.subsampling_h):
                    return clip, name
                target = core.query_video_format(family, vs.INTEGER, depth, ssw, ssh)
                extra = {"matrix_s": "709"} if fmt.color_family == vs.RGB and family == vs.YUV else {}
                return core.resize.Bicubic(clip, format=target.id, dither_type="error_diffusion", **extra), name
    raise VideoError(f"the {codec.encoder!r} encoder takes none of the formats vsexcolor writes")


class Encoder:
    """Writes frames of one clip into a video-only file (MP4: exact timestamps, any codec here).

    Args:
        path: the file to write.
        codec: the output codec; ``crf`` overrides its default quality.
        pix_fmt: the clip's FFmpeg pixel format (from :func:`encodable`).
        info: the source, for timestamps, frame rate and aspect ratio.
        first: the first frame number of the output range (see :meth:`VideoInfo.shift`).
        template: a frame of the clip: its size, and the colour description in its props
            to tag the stream with.
    """

    def __init__(self, path: Path, codec: Codec, crf: int | None, pix_fmt: str, info: VideoInfo,
                 first: int, template: vs.VideoFrame) -> None:
        self.info, self.pix_fmt, self._shift = info, pix_fmt, info.shift(first)
        self.width, self.height = template.width, template.height
        self._order = _plane_order(pix_fmt)
        self._fed = 0
        self._held: list[av.Packet] | None = []
        self.container = av.open(str(path), "w", format="mp4")
        try:
            self.stream = _add_video_stream(self.container, codec, crf, pix_fmt, self.width, self.height, info,
                                            template.props)
        except BaseException:
            self.container.close()
            raise

    def write(self, frame: vs.VideoFrame, n: int) -> None:
        """Encode ``frame`` as the source's frame n."""
        out = av.VideoFrame(self.width, self.height, self.pix_fmt)
        targets = [_plane_array(p, out.format) for p in out.planes]
        for p, i in enumerate(self._order):
            np.copyto(targets[i], np.asarray(frame[p]))
        out.pts, out.time_base = self.info.pts[n] - self._shift, self.info.time_base
        self._fed += 1
        self._mux(self.stream.encode(out))

    def _mux(self, packets: list[av.Packet]) -> None:
        if self._held is None:
            self.container.mux(packets)
            return
        self._held += packets
        if self._fed > _HOLD_FRAMES:
            self.container.mux(self._held)
            self._held = None

    def close(self, flush: bool = True) -> None:
        """Finish the file (``flush``) or just release it (the caller deletes it)."""
        try:
            if flush:
                self._mux(self.stream.encode(None))
                if self._held is not None:
                    self.container.mux(_timed_in_order(self._held))
        finally:
            self.container.close()


def _timed_in_order(packets: list[av.Packet]) -> list[av.Packet]:
    """Packets in decoding order with decoding timestamps from their presentation times.

    The i-th packet decodes at the i-th presentation time, less the largest lead any packet
    would otherwise have over its own presentation: increasing, and never after its pts.
    """
    times = sorted(p.pts for p in packets)
    lag = max((t - p.pts for t, p in zip(times, packets)), default=0)
    for t, packet in zip(times, packets):
        packet.dts = t - max(0, lag)
    return packets


def _add_video_stream(container: av.container.OutputContainer, codec: Codec, crf: int | None, pix_fmt: str,
                      width: int, height: int, info: VideoInfo, props: Mapping) -> av.VideoStream:
    """An encoding stream for frames of ``info``'s timing, tagged with the colour ``props``."""
    stream = container.add_stream(codec.encoder, rate=info.fps)
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = info.time_base
    if info.sample_aspect_ratio:
        ctx.sample_aspect_ratio = info.sample_aspect_ratio
    for attr, prop in (("colorspace", "_Matrix"), ("color_trc", "_Transfer"), ("color_primaries", "_Primaries")):
        if prop in props:
            setattr(ctx, attr, int(props[prop]))
    if "_Range" in props:
        ctx.color_range = 2 if props["_Range"] == vs.RANGE_FULL else 1
    options = dict(codec.options)
    if crf is not None:
        options["crf"] = str(crf)
    stream.options = options
    return stream


def check_output(path: Path, codec: Codec, crf: int | None, clip: vs.VideoNode, pix_fmt: str,
                 info: VideoInfo) -> None:
    """Raise VideoError unless ``path``'s container takes ``codec`` and ``info``'s audio, and
    the encoder opens for ``clip`` (size, ``pix_fmt``).

    Checked before any work, by setting up (not writing) such a file in the same folder.
    """
    fd, probe_path = tempfile.mkstemp(prefix=".vsexcolor-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        try:
            out = av.open(probe_path, "w")
        except ValueError:
            raise VideoError(f"cannot write {str(path)!r}: FFmpeg has no container for the "
                             f"{path.suffix or 'missing'} extension (use .mkv, .mp4 or .mov)") from None
        with out, _ffmpeg_log() as log:
            try:
                stream = _add_video_stream(out, codec, crf, pix_fmt, clip.width, clip.height, info, {})
                stream.codec_context.open()
                if info.audio:
                    with av.open(str(info.path)) as source:
                        for index in info.audio:
                            out.add_stream_from_template(source.streams[index])
            except (ValueError, av.FFmpegError) as e:
                raise VideoError(f"cannot write {str(path)!r}: {_reason(e, log)}") from None
    finally:
        os.unlink(probe_path)


def concatenate(parts: Sequence[Path], out: Path, info: VideoInfo, first: int, last: int) -> None:
    """Join the video of ``parts`` (from :class:`Encoder`, in order) with the source's audio.

    Audio packets are copied as they are: all of them for the whole file, else those
    starting within frames ``first``..``last``, shifted like the video.

    Raises:
        VideoError: the muxer refused the streams.
    """
    start, end = (info.seconds(first) if first > 0 else None), info.seconds(last + 1)
    shift = info.shift(first) * info.time_base
    try:
        with av.open(str(out), "w", options=_BITEXACT) as container, \
                (av.open(str(info.path)) if info.audio else contextlib.nullcontext()) as source:
            with av.open(str(parts[0])) as head:
                template = head.streams.video[0]
                video = container.add_stream_from_template(template)
                if template.codec_context.name == "hevc" and container.format.name in ("mp4", "mov"):
                    video.codec_context.codec_tag = "hvc1"  # Apple's players need it; FFmpeg writes hev1
            audio = {i: container.add_stream_from_template(source.streams[i]) for i in info.audio}

            def audio_packets() -> Iterator[av.Packet]:
                if not audio:
                    return
                for packet in source.demux(*(source.streams[i] for i in audio)):
                    if packet.pts is None:  # the demuxer's end-of-stream marker
                        continue
                    t = packet.pts * packet.time_base
                    if (start is not None and t < start) or (end is not None and t >= end):
                        continue
                    ticks = round(shift / packet.time_base)
                    packet.pts -= ticks
                    if packet.dts is not None:
                        packet.dts -= ticks
                    packet.stream = audio[packet.stream.index]
                    yield packet

            def when(packet: av.Packet) -> Fraction:
                return (packet.dts if packet.dts is not None else packet.pts) * packet.time_base

            for packet in heapq.merge(_video_packets(parts, video), audio_packets(), key=when):
                container.mux(packet)
    except (ValueError, av.FFmpegError) as e:
        raise VideoError(f"cannot write {str(out)!r}: {_reason(e)}") from None


def _video_packets(parts: Sequence[Path], stream: av.VideoStream) -> Iterator[av.Packet]:
    last_dts: Fraction | None = None
    for part in parts:
        with av.open(str(part)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                # Each part's decoding clock starts a little before its first frame; with a
                # variable frame rate that may reach back past the previous part's last packet.
                if last_dts is not None and packet.dts * packet.time_base <= last_dts:
                    packet.dts = int(last_dts / packet.time_base) + 1
                last_dts = packet.dts * packet.time_base
                packet.stream = stream
                yield packet


@contextlib.contextmanager
def _ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages meanwhile, for our own; FFmpeg prints nothing itself."""
    before = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as log:
            yield log
    finally:
        av.logging.set_level(before)


def _reason(error: Exception, log: Sequence[tuple[int, str, str]] = ()) -> str:
    """An FFmpeg error in a few words: without PyAV's errno prefix, with FFmpeg's last message."""
    reason = error.strerror.rstrip(".") if isinstance(error, av.FFmpegError) and error.strerror else str(error)
    if log:
        _, source, message = log[-1]
        reason += f" ({source}: {message.strip()})"
    return reason
