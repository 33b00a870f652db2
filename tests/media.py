"""Video, image and zip files for the tests."""
from __future__ import annotations

import io
import struct
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def write_video(path: Path, rgb: np.ndarray, *, pix_fmt: str = "yuv420p", codec: str = "libx264",
                pts: list[int] | None = None, time_base: Fraction = Fraction(1, 25), audio: bool = True,
                gop: int | None = None, b_frames: int | None = None) -> Path:
    """uint8 RGB [T, H, W, 3] as a video file, with a 440 Hz AAC tone as long as the video;
    ``gop``: frames from one keyframe to the next, ``b_frames``: B-frames in a row at most
    (default: the encoder's)."""
    pts = list(range(len(rgb))) if pts is None else pts
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], pix_fmt
        stream.codec_context.time_base = time_base
        if gop is not None:
            stream.codec_context.gop_size = gop
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if codec == "libx264":
            stream.options = {"crf": "12"}
        sound = container.add_stream("aac", rate=48000) if audio else None
        for image, t in zip(rgb, pts):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = t, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            seconds = float((pts[-1] + 1) * time_base)
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(int(48000 * seconds)) / 48000)
            chunk = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def damaged_copy(path: Path, out: Path, packet: int) -> Path:
    """``path`` copied packet for packet into ``out``, with 16 bytes in the middle of its video
    packet number ``packet`` (in file order) inverted, as a bad sector or a broken transfer
    would leave them."""
    with av.open(str(path)) as source, av.open(str(out), "w") as container:
        stream = container.add_stream_from_template(source.streams.video[0])
        for k, packet_in in enumerate(p for p in source.demux(video=0) if p.size):
            data = bytearray(bytes(packet_in))
            if k == packet:
                middle = len(data) // 2
                data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
            copy = av.Packet(bytes(data))
            copy.pts, copy.dts, copy.time_base = packet_in.pts, packet_in.dts, packet_in.time_base
            copy.is_keyframe, copy.stream = packet_in.is_keyframe, stream
            container.mux(copy)
    return out


def write_image(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def crash_encoder_at(monkeypatch, frame: int) -> None:
    """Make writing frame ``frame`` of the output fail, as a crash in the middle of a run would."""
    import vapoursynth as vs

    from vsexcolor.render import encode

    write = encode.Encoder.write

    def crash(self, out, n):
        if n == frame:
            raise vs.Error("injected failure")
        write(self, out, n)

    monkeypatch.setattr(encode.Encoder, "write", crash)


def declare_size(path: Path, name: str, size: int) -> Path:
    """Make the zip at ``path`` declare ``size`` bytes unpacked for its member ``name`` (in
    its local header and its central directory entry), whatever its data inflates to."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = archive.start_dir
        for info in archive.infolist():
            if info.filename == name:
                struct.pack_into("<I", data, info.header_offset + 22, size)
                struct.pack_into("<I", data, entry + 24, size)
            entry += 46 + sum(struct.unpack_from("<HHH", data, entry + 28))
    path.write_bytes(bytes(data))
    return path


def _packets(data: bytes | Path) -> list[tuple]:
    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as container:
        return [(p.stream.index, p.pts, p.dts, p.duration, p.is_keyframe, bytes(p))
                for p in container.demux() if p.size]


def first_difference(path: Path, expected: bytes) -> str | None:
    """Where the file at ``path`` first differs from ``expected`` (None: the same bytes): the
    byte, and the first packet that differs, or that the packets are equal and only the
    container around them is not."""
    data = path.read_bytes()
    if data == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(data, expected)) if a != b), min(len(data), len(expected)))
    where = f"byte {at} of {len(data)} (expected {len(expected)} bytes)"
    got, want = _packets(data), _packets(expected)
    fields = ("stream", "pts", "dts", "duration", "keyframe", "data")
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            diff = [f"{f} {x!r:.40} != {y!r:.40}" for f, x, y in zip(fields, a, b) if x != y]
            return f"{where}; packet {i}: {', '.join(diff)}"
    if len(got) != len(want):
        return f"{where}; {len(got)} packets, expected {len(want)}"
    return f"{where}; every packet equal: only the container differs"


def assert_same_bytes(path: Path, expected: bytes, label: str = "") -> None:
    difference = first_difference(path, expected)
    assert difference is None, f"{label}: {difference}" if label else difference
