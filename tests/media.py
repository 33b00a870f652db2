"""Video and image files for the command-line tests."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def write_video(path: Path, rgb: np.ndarray, *, pix_fmt: str = "yuv420p", codec: str = "libx264",
                pts: list[int] | None = None, time_base: Fraction = Fraction(1, 25), audio: bool = True) -> Path:
    """uint8 RGB [T, H, W, 3] as a video file, with a 440 Hz AAC tone as long as the video."""
    pts = list(range(len(rgb))) if pts is None else pts
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], pix_fmt
        stream.codec_context.time_base = time_base
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


def write_image(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def crash_encoder_at(monkeypatch, frame: int) -> None:
    """Make writing frame ``frame`` of the output fail, as a crash in the middle of a run would."""
    import vapoursynth as vs

    from vsexcolor import video

    write = video.Encoder.write

    def crash(self, out, n):
        if n == frame:
            raise vs.Error("injected failure")
        write(self, out, n)

    monkeypatch.setattr(video.Encoder, "write", crash)
