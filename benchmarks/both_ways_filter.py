"""``colorize(direction="both")`` against ``"forward"``, through the filter itself (issue #34's first target and
its cost).

Each bundled clip's first frames, gray as its Y' (BT.709 limited-range GRAY8), ground-truth
keyframes (the clip's own colour frames) at each shot's first and last frame and every 40th
frame, ``backend="propagate"``, ``propagate=True``: the PSNR on float RGB (scikit-image,
against the original) of the frames strictly between keyframes, per clip and then over the
clips, for both directions; the least gain of a shot; the PSNR of the keyframes themselves
(the truth's colour through the filter's output, YUV 4:2:0 with the source's luma: the most any
frame can score); and the wall time of each render (every frame requested in order, on this
machine's CPU).

``--backend devc`` measures the cost on the DEVC networks (``--weights``, by default the
deterministic test weights of the real checkpoint's size, whose colours mean nothing).

    .venv/bin/python benchmarks/both_ways_filter.py
    .venv/bin/python benchmarks/both_ways_filter.py --clips bikes --frames 60 --pixels 20000
    .venv/bin/python benchmarks/both_ways_filter.py --plot docs/both-ways.png   # the README's figure
    .venv/bin/python benchmarks/both_ways_filter.py --backend devc --frames 40 --pixels 20000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))  # the test weights

from both_ways import CLIPS, Clip, fusion_keys  # noqa: E402
from detnets import write_unpacked  # noqa: E402

import vsexcolor  # noqa: E402
from vsexcolor.eval.metrics import psnr  # noqa: E402
from vsexcolor.filter.formats import frame_rgb  # noqa: E402
from vsexcolor.filter.resolution import DEFAULT_PIXELS  # noqa: E402

core = vs.core


def render(clip: Clip, keys: list[int], direction: str, pixels: int, backend: str,
           weights: Path | None) -> tuple[dict[int, float], float]:
    """PSNR of every frame, and the render's wall seconds."""
    out = vsexcolor.colorize(clip.gray, {k: clip.rgb[k] for k in keys}, backend=backend, weights=weights,
                             propagate=True, direction=direction, pixels=pixels, device="cpu")
    rgb = core.resize.Bicubic(out, format=vs.RGBS, matrix_in=clip.props["_Matrix"])
    started = time.perf_counter()
    frames = [frame_rgb(f) for f in rgb.frames(close=True)]
    seconds = time.perf_counter() - started
    return {t: psnr(f, clip.colour[t]) for t, f in enumerate(frames)}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--pixels", type=int, default=DEFAULT_PIXELS)
    parser.add_argument("--backend", choices=("propagate", "devc"), default="propagate")
    parser.add_argument("--weights", type=Path, help="with --backend devc (default: the test weights)")
    parser.add_argument("--plot", type=Path, help="write each clip's PSNR per frame, both directions, to this PNG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "devc" and args.weights is None:
            args.weights = write_unpacked(Path(tmp))
        table(args)


def table(args: argparse.Namespace) -> None:
    print(f"{args.backend} backend, ground-truth keyframes, pixels={args.pixels}, {args.frames} frames a clip")
    print(f"{'clip':20}{'forward dB':>11}{'both dB':>9}{'gain':>7}{'worst shot':>11}{'keyframes dB':>13}"
          f"{'fwd s':>7}{'both s':>8}{'x':>6}")
    gains, costs, curves = [], [], []
    for name in args.clips:
        clip = Clip(name, args.frames)
        keys = fusion_keys(clip)
        scores, seconds = {}, {}
        for direction in ("forward", "both"):
            scores[direction], seconds[direction] = render(clip, keys, direction, args.pixels, args.backend,
                                                           args.weights)
        between = [t for t in range(args.frames) if t not in keys]

        def mean(direction: str, frames: list[int]) -> float:
            return float(np.mean([scores[direction][t] for t in frames]))

        forward, both = mean("forward", between), mean("both", between)
        shots = [[t for t in between if a <= t <= b] for a, b in clip.shots]
        worst = min(mean("both", s) - mean("forward", s) for s in shots if s)
        curves.append((name, keys, scores))
        gains.append(both - forward)
        costs.append(seconds["both"] / seconds["forward"])
        print(f"{name:20}{forward:11.2f}{both:9.2f}{both - forward:+7.2f}{worst:+11.2f}{mean('both', keys):13.2f}"
              f"{seconds['forward']:7.1f}{seconds['both']:8.1f}{costs[-1]:6.2f}", flush=True)
    print(f"{'mean over clips':20}{'':20}{np.mean(gains):+7.2f}{'':39}{np.mean(costs):6.2f}")
    if args.plot:
        plot(curves, args.pixels, args.plot)


def plot(curves: list[tuple[str, list[int], dict[str, dict[int, float]]]], pixels: int, path: Path) -> None:
    """PSNR per frame of each clip, forward and both ways, its keyframes marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 2.6 * len(curves)), layout="constrained")
    for axes, (name, keys, scores) in zip(figure.subplots(len(curves), 1, squeeze=False)[:, 0], curves):
        for direction, style in (("forward", "C3"), ("both", "C0")):
            frames = sorted(scores[direction])
            axes.plot(frames, [scores[direction][t] for t in frames], style, label=f'direction="{direction}"')
        for k in keys:
            axes.axvline(k, color="0.7", linewidth=0.8)
        axes.set_title(f"{name}: ground-truth keyframes (gray lines), propagate backend, pixels={pixels}")
        axes.set_ylabel("PSNR (dB, float RGB)")
        axes.legend(loc="lower left")
    axes.set_xlabel("frame")
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
