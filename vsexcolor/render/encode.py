"""Clip frames into files: the output codecs, an encoder of parts, and the join of parts with
the source's audio. Frame n keeps its source timestamp (less a constant shift when a range
is cut out), so a variable frame rate and the audio sync survive unchanged."""
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

from .video import VideoError, VideoInfo, ffmpeg_log, ffmpeg_reason, pix_fmt_name, plane_order

core = vs.core


@dataclass(frozen=True)
class Codec:
    """An output codec: the FFmpeg encoder, its default CRF (None: lossless) and options."""

    encoder: str
    crf: int | None
    options: Mapping[str, str] = field(default_factory=dict)


def _has_avx512() -> bool:
    """Whether this CPU (and its OS) runs the AVX-512 instructions x264 uses (F, CD, BW, DQ, VL)."""
    # numpy tests the CPU once at import; its table has no public name.
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


def _x264_params() -> str:
    """x264's threads as slices of each frame, and its SIMD code capped at AVX2.

    x264's AVX-512 code (in its macroblock tree) reads memory it never wrote: the same frames
    came out as other bytes from one encoder to the next in one process (720x480: 3 outputs
    in 6 runs), and in farm renders (tests/cluster). Its AVX2 code gives the bytes the
    AVX-512 code gives when lucky, as fast (benchmarks/README.md). Naming AVX2 where the CPU
    lacks it would crash x264, and such a CPU has no AVX-512 to avoid. Slices are what PyAV
    opens x264 with; named, so the bytes do not hang on PyAV's default.
    """
    return "sliced-threads=1" + (":asm=AVX2" if _has_avx512() else "")


#: ``--codec`` choices. Their threads are fixed: an encoder's output depends on how many it
#: uses, and a part must come out the same on every machine that may encode it.
CODECS: dict[str, Codec] = {
    "h264": Codec("libx264", 18, {"threads": "4", "x264-params": _x264_params()}),
    # x265 logs to stderr itself; its rows run in parallel within one frame (WPP).
    "h265": Codec("libx265", 20, {"x265-params": "log-level=error:pools=4:frame-threads=1"}),
    # The archival settings (as in the Library of Congress and IETF CELLAR guidance):
    # version 3, every frame a keyframe, a CRC per slice to detect damage; 4 slices.
    "ffv1": Codec("ffv1", None, {"level": "3", "g": "1", "slicecrc": "1", "slices": "4", "threads": "4"}),
}


# libx265 makes up the decoding timestamps of a stream shorter than its B-frame delay (it
# reads them uninitialised: one- and two-frame scenes come out with nonsense), so the packets
# of a scene this short are held back and timed from their presentation order instead.
_HOLD_FRAMES = 16


# No random segment ID, no date, no library version in the files we join: the same frames
# and audio give the same bytes, on any machine, in any run.
_BITEXACT = {"fflags": "+bitexact"}


def _plane_array(plane: av.video.plane.VideoPlane, fmt: av.VideoFormat) -> np.ndarray:
    """A writable view of a plane's pixels (line padding cut off)."""
    dtype = np.dtype(np.uint8 if max(c.bits for c in fmt.components) <= 8 else "<u2")
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    return rows[:, :plane.width]


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
        self._order = plane_order(pix_fmt)
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
        with out, ffmpeg_log() as log:
            try:
                stream = _add_video_stream(out, codec, crf, pix_fmt, clip.width, clip.height, info, {})
                stream.codec_context.open()
                if info.audio:
                    with av.open(str(info.path)) as source:
                        for index in info.audio:
                            out.add_stream_from_template(source.streams[index])
            except (ValueError, av.FFmpegError) as e:
                raise VideoError(f"cannot write {str(path)!r}: {ffmpeg_reason(e, log)}") from None
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
        raise VideoError(f"cannot write {str(out)!r}: {ffmpeg_reason(e)}") from None


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
