"""Where a keyframe that is not its shot's first frame should colour the frames before it.

Each shot of the three bundled clips (120 frames, 320x176, weight-free backend) gets its own
colour frame, D frames into the shot, as a keyframe; the frames before it are scored (PSNR,
RGB, against the originals) three ways:

- exemplar: they are colorized from the keyframe as an exemplar alone;
- seeded: the shot's recurrence starts from the keyframe's colours (what vsexcolor does);
- backward: the recurrence runs backwards from the keyframe to the shot's first frame.

    .venv/bin/python benchmarks/keyframe_placement.py
    .venv/bin/python benchmarks/keyframe_placement.py --into 6 12 20 --frames 120
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips

import vsexcolor  # noqa: E402
from clips import decode_rgb, sample_clip_path, yuv_clip  # noqa: E402
from vsexcolor.filter import shots  # noqa: E402
from vsexcolor.filter import PROP_KEYFRAME, PROP_SCENE_START  # noqa: E402

core = vs.core
CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / ((a.astype(np.float64) - b) ** 2).mean()))


def rgb(clip: vs.VideoNode, n: int) -> np.ndarray:
    frame = clip.get_frame(n)
    return np.stack([np.asarray(frame[c]) for c in range(3)], -1)


def gray(frames: np.ndarray) -> vs.VideoNode:
    return core.std.ShufflePlanes(yuv_clip(np.ascontiguousarray(frames)), 0, vs.GRAY)


def as_rgb(out: vs.VideoNode) -> vs.VideoNode:
    return core.resize.Bicubic(out, format=vs.RGB24, matrix_in_s="709")


def before_keyframes(frames: np.ndarray, keys: dict[int, np.ndarray]) -> list[int]:
    """The frames that lie before their shot's keyframe."""
    out = vsexcolor.colorize(gray(frames), keys, backend="propagate", propagate=True)
    return [n for n in range(len(frames))
            if (props := out.get_frame(n).props)[PROP_SCENE_START] < props[PROP_KEYFRAME]]


def forward(frames: np.ndarray, keys: dict[int, np.ndarray], keyframe: bool, scored: list[int]) -> list[float]:
    """PSNR of the frames ``scored``, colorized forward with the keys as keyframes (seeding
    their shots) or as exemplars."""
    out = as_rgb(vsexcolor.colorize(gray(frames), keys, backend="propagate", propagate=keyframe))
    return [psnr(rgb(out, n), frames[n]) for n in scored]


def backward(frames: np.ndarray, spans: list[tuple[int, int]], into: int) -> list[float]:
    scored = []
    for a, b in spans:
        key = min(a + into, b)
        reversed_shot = frames[a:key + 1][::-1]
        out = as_rgb(vsexcolor.colorize(gray(reversed_shot), {0: reversed_shot[0]}, backend="propagate",
                                        propagate=True, scenes=False))
        scored += [psnr(rgb(out, i), reversed_shot[i]) for i in range(1, len(reversed_shot))]
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=int, nargs="+", default=[6, 12, 20],
                        help="frames from a shot's start to its keyframe (default 6 12 20)")
    parser.add_argument("--frames", type=int, default=120, help="frames of each clip (default 120)")
    args = parser.parse_args()
    print(f"{'clip':18} {'into':>4} {'frames':>6} {'exemplar':>9} {'seeded':>7} {'backward':>9}  (mean PSNR, dB)")
    for into in args.into:
        for name in CLIPS:
            frames = decode_rgb(sample_clip_path(name), args.frames, (320, 176))
            spans = [(s.first, s.last) for s in shots.find(gray(frames), vsexcolor.filter.DEFAULT_THRESHOLD)]
            keys = {min(a + into, b): frames[min(a + into, b)] for a, b in spans}
            scored = before_keyframes(frames, keys)
            seeded = forward(frames, keys, True, scored)
            exemplar = forward(frames, keys, False, scored)
            back = backward(frames, spans, into)
            print(f"{name:18} {into:4d} {len(seeded):6d} {np.mean(exemplar):9.2f} {np.mean(seeded):7.2f} "
                  f"{np.mean(back):9.2f}", flush=True)


if __name__ == "__main__":
    main()
