"""Colour carried both ways between keyframes (issue #34): which fusion, where keyframes go, what it costs.

Gray input is each clip's Y' (BT.709 limited-range GRAY8, as the issue's check), keyframes
are the clip's own colour frames. The passes run on the propagate backend directly
(``both_ways_passes.py``: the filter's forward pass, step for step); every output goes
through the filter's own finish and output conversion (source luma kept, YUV 4:2:0) and is
scored as float RGB against the original (PSNR, scikit-image).

1. Fusion: keyframes at each shot's start, every 40 frames of the clip and each shot's last
   frame; PSNR over the frames strictly between keyframes, per clip then over clips, for the
   forward pass, the backward pass and every fusion rule (RULES).
2. Placement: keyframes from :func:`vsexcolor.filter.keyframe_rule.place` for a few settings
   (and fixed baselines), fused both ways with the chosen rule: drift of every shot of 40+
   frames (mean PSNR of its first 10 non-keyframe frames minus its last 10), keyframes per
   minute, and whether the count stays within one per shot plus one per 60 frames.
3. Cost: seconds per frame of the forward pass, the backward pass and the fusion.

    .venv/bin/python benchmarks/both_ways.py                       # everything, default pixels
    .venv/bin/python benchmarks/both_ways.py --rules all --no-placement
    .venv/bin/python benchmarks/both_ways.py --check               # the forward pass against the filter's
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips
sys.path.insert(0, str(ROOT / "benchmarks"))

from both_ways_passes import Pass, both_passes, clip_luma
from clips import decode_rgb, sample_clip_path, yuv_clip

import vsexcolor
from vsexcolor.eval.clips import frames_lab
from vsexcolor.eval.metrics import psnr
from vsexcolor.filter import PRESETS
from vsexcolor.filter.formats import colour_props, frame_rgb, in_format, output_format
from vsexcolor.filter.fusion import fuse
from vsexcolor.filter.keyframe_rule import place
from vsexcolor.filter.postprocess import finish_rgb, for_backend
from vsexcolor.filter.resolution import DEFAULT_PIXELS
from vsexcolor.filter.shots import find

core = vs.core
CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine")
FINISH = for_backend(PRESETS["default"][0], output_smoothing=False)
#: Frames at each end of a shot whose PSNR measures its drift.
DRIFT_SPAN = 10
LONG_SHOT = 40


@dataclass
class Frame:
    """What a fusion rule sees of frame t: both passes' ab [2, h, w] and evidence [h, w],
    the frames ``since`` the keyframe before and ``until`` the one after, and (for the
    oracle only) the ground truth's ab at the internal size."""

    forward: np.ndarray
    backward: np.ndarray
    since: int
    until: int
    evidence_f: dict[str, np.ndarray]
    evidence_b: dict[str, np.ndarray]
    truth_ab: Callable[[], np.ndarray]


Rule = Callable[[Frame], np.ndarray]


def _blend(x: Frame, wf: np.ndarray | float, wb: np.ndarray | float) -> np.ndarray:
    return (wf * x.forward + wb * x.backward) / (wf + wb)


def linear(x: Frame) -> np.ndarray:
    return _blend(x, x.until, x.since)


def saturating(tau: float) -> Rule:
    """Inverse-variance weights for an error that grows as 1 - exp(-d / tau) with the
    distance d (frames) from a pass's keyframe."""
    def rule(x: Frame) -> np.ndarray:
        return _blend(x, 1.0 / (1.02 - np.exp(-x.since / tau)), 1.0 / (1.02 - np.exp(-x.until / tau)))
    return rule


def confident(key: str, power: float = 1.0, blur: float = 0.0, tau: float | None = None) -> Rule:
    """Distance weights (linear, or :func:`saturating` ones) times (evidence + 0.05) ** power
    of each pass, the evidence optionally blurred (Gaussian sigma ``blur`` pixels)."""
    def rule(x: Frame) -> np.ndarray:
        cf, cb = x.evidence_f[key], x.evidence_b[key]
        if blur:
            cf, cb = (cv2.GaussianBlur(c, (0, 0), blur) for c in (cf, cb))
        if tau is None:
            df, db = x.until, x.since
        else:
            df, db = 1.0 / (1.02 - np.exp(-x.since / tau)), 1.0 / (1.02 - np.exp(-x.until / tau))
        return _blend(x, df * (cf + 0.05) ** power, db * (cb + 0.05) ** power)
    return rule


def chosen(x: Frame) -> np.ndarray:
    """The rule of :func:`vsexcolor.filter.fusion.fuse`, on the backend's correspondence confidence."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None]
    return fuse(t(x.forward), t(x.backward), x.since, x.until, t(x.evidence_f["match"])[None],
                t(x.evidence_b["match"])[None])[0].numpy()


def disagreement(x: Frame) -> np.ndarray:
    """Linear where the passes agree; where they differ by more than 10 ab units, the pass
    with the surer correspondence takes over."""
    gap = np.sqrt(((x.forward - x.backward) ** 2).sum(0))
    lean = np.clip((gap - 5.0) / 5.0, 0.0, 1.0)
    sure_f = (x.evidence_f["match"] >= x.evidence_b["match"]).astype(np.float32)
    wf = (1 - lean) * x.until / (x.since + x.until) + lean * sure_f
    return wf * x.forward + (1 - wf) * x.backward


def oracle(x: Frame) -> np.ndarray:
    """Per pixel, the pass nearer the truth (needs the ground truth: an upper bound)."""
    truth = x.truth_ab()
    nearer = ((x.forward - truth) ** 2).sum(0) < ((x.backward - truth) ** 2).sum(0)
    return np.where(nearer, x.forward, x.backward)


def block_oracle(size: int) -> Rule:
    """Per ``size`` x ``size`` block, the one mix of the two passes nearest the truth (least
    squares, clipped to 0..1): a bound on any rule that weighs the passes by evidence that is
    smooth over a block (needs the ground truth)."""

    def rule(x: Frame) -> np.ndarray:
        truth = x.truth_ab()
        out = np.empty_like(x.forward)
        for y in range(0, truth.shape[1], size):
            for z in range(0, truth.shape[2], size):
                block = np.s_[:, y:y + size, z:z + size]
                apart = x.forward[block] - x.backward[block]
                spread = float((apart ** 2).sum())
                share = float(np.clip(((truth[block] - x.backward[block]) * apart).sum() / spread, 0.0, 1.0)) \
                    if spread > 0 else 0.5
                out[block] = share * x.forward[block] + (1 - share) * x.backward[block]
        return out

    return rule


RULES: dict[str, Rule] = {
    "forward": lambda x: x.forward,
    "backward": lambda x: x.backward,
    "linear (distance)": linear,
    "linear x match": confident("match"),
    "linear x match^2 (fusion.fuse)": chosen,
    "linear x match, blurred 2px": confident("match", 1.0, blur=2.0),
    "linear x chain": confident("chain"),
    "linear x chain^2": confident("chain", 2.0),
    "linear x certainty": confident("certainty"),
    "linear x prop": confident("prop"),
    "saturating tau 4": saturating(4.0),
    "saturating tau 16": saturating(16.0),
    "saturating tau 4 x match^2": confident("match", 2.0, tau=4.0),
    "saturating tau 4 x chain^2": confident("chain", 2.0, tau=4.0),
    "disagreement -> match": disagreement,
    "oracle per 8x8 block (truth)": block_oracle(8),
    "oracle per pixel (truth)": oracle,
}
SHORT = ("forward", "backward", "linear (distance)", "linear x match^2 (fusion.fuse)", "linear x chain^2",
         "saturating tau 4 x chain^2", "oracle per 8x8 block (truth)", "oracle per pixel (truth)")


class Clip:
    """A bundled clip: colour frames, Y' gray clip, its L and shots."""

    def __init__(self, name: str, frames: int) -> None:
        self.name = name
        rgb = decode_rgb(sample_clip_path(name), frames)
        self.colour = rgb.astype(np.float32) / 255.0
        self.rgb = rgb
        self.gray = core.std.ShufflePlanes(yuv_clip(np.ascontiguousarray(rgb)), 0, vs.GRAY)
        self.props = colour_props(self.gray, self.gray.get_frame(0).props)
        self.L = clip_luma(self.gray)
        with av.open(str(sample_clip_path(name))) as container:
            self.fps = float(container.streams.video[0].average_rate)
        self.shots = [(s.first, s.last) for s in find(self.gray, vsexcolor.filter.DEFAULT_THRESHOLD, pick="first")]

    def score(self, abs_: dict[int, np.ndarray], geometry) -> dict[int, float]:
        """PSNR of each frame t whose internal ab is ``abs_[t]``, through the filter's finish and output."""
        frames = sorted(abs_)
        rgbs = [finish_rgb(self.L[t:t + 1], torch.from_numpy(np.ascontiguousarray(abs_[t]))[None], geometry,
                           FINISH)[0].numpy() for t in frames]
        blank = core.std.BlankClip(self.gray, format=vs.RGBS, length=len(frames), keep=True)

        def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
            out = f.copy()
            for c in range(3):
                np.copyto(np.asarray(out[c]), rgbs[n][c])
            return out

        source = core.std.Splice([self.gray[t] for t in frames]) if len(frames) > 1 else self.gray[frames[0]]
        finished = core.std.ModifyFrame(blank, blank, fill)
        out = in_format(source, finished, output_format(source, None), self.props)
        rgb = core.resize.Bicubic(out, format=vs.RGBS, matrix_in=self.props["_Matrix"])
        return {t: psnr(frame_rgb(f), self.colour[t]) for t, f in zip(frames, rgb.frames(close=True))}


def frames_of(clip: Clip, keys: list[int], forward: Pass, backward: Pass, geometry) -> dict[int, Frame]:
    out = {}
    for t in forward.ab:
        before = max(k for k in keys if k < t)
        has_back = t in backward.ab
        after = min(k for k in keys if k > t) if has_back else t
        truth = lambda t=t: geometry.to_internal(frames_lab(clip.rgb[t])[None])[0, 1:].numpy()
        out[t] = Frame(forward.ab[t], backward.ab[t] if has_back else forward.ab[t], t - before,
                       after - t, {k: v[t] for k, v in forward.evidence.items()},
                       {k: v[t] for k, v in backward.evidence.items() if t in v} if has_back else {}, truth)
    return out


def apply(rule: Rule, frames: dict[int, Frame]) -> dict[int, np.ndarray]:
    """The rule where both passes exist, the forward pass alone after a shot's last keyframe."""
    return {t: rule(x) if x.until else x.forward for t, x in frames.items()}


def fusion_keys(clip: Clip) -> list[int]:
    """Each shot's first and last frame and every 40th frame of the clip."""
    return sorted({k for a, b in clip.shots for k in (a, b, *(k for k in range(0, 10 ** 6, 40) if a <= k <= b))})


def fusion_table(clips: list[Clip], rules: list[str], pixels: int) -> None:
    results: dict[str, dict[str, float]] = {}
    worst_shot: dict[str, dict[str, float]] = {}
    cost = []
    for clip in clips:
        keys = fusion_keys(clip)
        print(f"# {clip.name}: shots {clip.shots}, keyframes {keys}", file=sys.stderr, flush=True)
        fwd, bwd, geometry = both_passes(clip.L, clip.colour, keys, clip.shots, pixels, chain=True)
        frames = frames_of(clip, keys, fwd, bwd, geometry)
        started = time.process_time()
        apply(chosen, frames)
        fusion_s = time.process_time() - started
        cost.append((clip.name, fwd.seconds / fwd.frames, bwd.seconds / bwd.frames, fusion_s / len(frames)))
        for name in rules:
            scores = clip.score(apply(RULES[name], frames), geometry)
            results.setdefault(name, {})[clip.name] = float(np.mean(list(scores.values())))
            # The shot whose gain is least.
            per_shot = [np.mean([scores[t] for t in scores if a <= t <= b]) for a, b in clip.shots
                        if any(a <= t <= b for t in scores)]
            worst_shot.setdefault(name, {})[clip.name] = per_shot
    names = [c.name for c in clips]
    print(f"\nFusion: mean PSNR (dB) over the frames between keyframes; gain over forward; pixels={pixels}")
    print(f"{'rule':30}" + "".join(f"{n[:12]:>13}" for n in names) + f"{'mean':>8}" + "".join(
        f"{'+' + n[:6]:>9}" for n in names) + f"{'+mean':>8}{'worst shot':>11}")
    for name in rules:
        row = results[name]
        gains = [row[n] - results["forward"][n] for n in names] if "forward" in results else [0.0] * len(names)
        shot_gain = min(g - f for n in names for g, f in zip(worst_shot[name][n], worst_shot["forward"][n])) \
            if "forward" in results else 0.0
        print(f"{name:30}" + "".join(f"{row[n]:13.2f}" for n in names) + f"{np.mean([row[n] for n in names]):8.2f}"
              + "".join(f"{g:+9.2f}" for g in gains) + f"{np.mean(gains):+8.2f}{shot_gain:+11.2f}")
    print("\nCost: backend CPU seconds per frame (process time, all threads)")
    print(f"{'clip':20}{'forward':>9}{'backward':>9}{'fusion':>9}{'both/fwd':>9}")
    for name, f, b, u in cost:
        print(f"{name:20}{f:9.3f}{b:9.3f}{u:9.4f}{(f + b + u) / f:9.2f}")


@dataclass(frozen=True)
class Placement:
    name: str
    keys: Callable[[Clip], list[int]]


def by_rule(threshold: float, min_gap: float, max_gap: float) -> Placement:
    def keys(clip: Clip) -> list[int]:
        return sorted(a + k for a, b in clip.shots
                      for k in place(lambda i, a=a: clip.L[a + i:a + i + 1], b - a + 1, clip.fps, min_gap=min_gap,
                                     max_gap=max_gap, threshold=threshold))
    return Placement(f"rule {threshold:.2f} {min_gap:.1f}-{max_gap:.1f}s", keys)


PLACEMENTS = (
    Placement("one per shot", lambda clip: [a for a, _ in clip.shots]),
    Placement("shot ends", lambda clip: sorted({k for a, b in clip.shots for k in (a, b)})),
    by_rule(0.6, 1.6, 4.0),
    by_rule(0.8, 1.6, 4.0),
    by_rule(0.4, 1.6, 4.0),
    by_rule(0.6, 2.4, 6.0),
    by_rule(0.6, 1.2, 4.0),
)


def _drift(scored: list[int], psnrs: dict[int, float]) -> float:
    """Mean PSNR of the first DRIFT_SPAN of the frames ``scored`` minus that of the last."""
    return float(np.mean([psnrs[t] for t in scored[:DRIFT_SPAN]]) - np.mean([psnrs[t] for t in scored[-DRIFT_SPAN:]]))


def placement_table(clips: list[Clip], pixels: int) -> None:
    print(f"\nPlacement: drift (dB, first 10 non-keyframe frames minus last 10) of each shot of {LONG_SHOT}+ "
          f"frames, forward-only and fused (fusion.fuse); pixels={pixels}")
    print(f"{'placement':24}{'clip':20}{'keys':>5}{'budget':>7}{'keys/min':>9}{'PSNR fwd':>9}{'PSNR both':>10}"
          f"  drift per long shot (fwd / both)")
    for placement in PLACEMENTS:
        for clip in clips:
            keys = placement.keys(clip)
            fwd, bwd, geometry = both_passes(clip.L, clip.colour, keys, clip.shots, pixels, chain=False)
            frames = frames_of(clip, keys, fwd, bwd, geometry)
            forward = clip.score(apply(RULES["forward"], frames), geometry)
            both = clip.score(apply(chosen, frames), geometry)
            drifts = []
            for a, b in clip.shots:
                if b - a + 1 < LONG_SHOT:
                    continue
                scored = [t for t in sorted(forward) if a <= t <= b]
                drift = partial(_drift, scored)
                drifts.append(f"{a}-{b}: {drift(forward):+.1f} / {drift(both):+.1f}")
            budget = len(clip.shots) + len(clip.colour) // 60
            minutes = len(clip.colour) / clip.fps / 60
            print(f"{placement.name:24}{clip.name:20}{len(keys):5d}{budget:7d}{len(keys) / minutes:9.1f}"
                  f"{statistics.mean(forward.values()):9.2f}{statistics.mean(both.values()):10.2f}  "
                  + ", ".join(drifts) + f"  keys {keys}", flush=True)


def check(clips: list[Clip]) -> None:
    """The harness's forward pass against the filter's, on the fusion setting's keyframes."""
    print("\nCheck: mean PSNR of the forward pass, the filter vs this harness (same frames)")
    for clip in clips:
        keys = fusion_keys(clip)
        out = vsexcolor.colorize(clip.gray, {k: clip.colour[k] for k in keys}, backend="propagate", propagate=True)
        rgb = core.resize.Bicubic(out, format=vs.RGBS, matrix_in=clip.props["_Matrix"])
        filt = {t: psnr(frame_rgb(f), clip.colour[t]) for t, f in enumerate(rgb.frames(close=True)) if t not in keys}
        fwd, bwd, geometry = both_passes(clip.L, clip.colour, keys, clip.shots, DEFAULT_PIXELS, chain=False)
        ours = clip.score(apply(RULES["forward"], frames_of(clip, keys, fwd, bwd, geometry)), geometry)
        print(f"{clip.name:20} filter {np.mean([filt[t] for t in ours]):.2f}  harness {np.mean(list(ours.values())):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--pixels", type=int, default=DEFAULT_PIXELS, help="internal pixels of the fusion study")
    parser.add_argument("--placement-pixels", type=int, default=128 * 72,
                        help="internal pixels of the placement study (default 128x72: cheap)")
    parser.add_argument("--rules", choices=("short", "all"), default="short")
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--no-placement", action="store_true")
    parser.add_argument("--check", action="store_true", help="only compare the forward pass with the filter's")
    args = parser.parse_args()
    clips = [Clip(name, args.frames) for name in args.clips]
    if args.check:
        check(clips)
        return
    if not args.no_fusion:
        fusion_table(clips, list(RULES) if args.rules == "all" else list(SHORT), args.pixels)
    if not args.no_placement:
        placement_table(clips, args.placement_pixels)


if __name__ == "__main__":
    main()
