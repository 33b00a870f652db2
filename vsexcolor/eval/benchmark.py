"""Colorize gray versions of colour clips and score them against the colour originals.

``propagate`` and ``devc`` are scored as users get them: through ``vsexcolor.colorize``
with its defaults (scene cuts, batches, precision), on a float gray clip whose gray value
has the frames' L*, its YUV output brought back to RGB. The baselines, which are no filter
backends, run on the direct loop (:func:`colorize_directly`). Five settings:

* ``keyframe``: the clip's colour frame 0 is the reference and the initial state (the
  authors' propagation mode); frame 0 is an input then, so frames 1.. are scored.
* ``reference``: a colour frame far from the scored ones (see :class:`.clips.Clip`), or a
  given image, is the reference and there is no initial state; all frames are scored.
* ``shots``: each shot's first frame in colour (as the filter's cut detector finds the
  shots) is its keyframe, the papers' protocol per shot; naive propagation restarts at
  each shot too. Every frame but the keyframes is scored, and each shot on its own.
* ``ntire``: the colour frames 0, 50 and 100 (those the clip has) are keyframes, as NTIRE
  2023's video colorization track gives them; the filter carries each through its shot
  (``direction`` decides whether backward too). Scored as ``shots``.
* ``placed``: keyframes where the filter places automatic keyframes (at its default
  ``keyframe_gaps``, from each shot's first frame: another where the last no longer
  explains the picture, within its shortest and longest gap, and the shot's last frame),
  each in colour from the original: a perfect keyframe colorizer, so that only
  the carrying of colour between keyframes is scored. Scored as ``shots``.

Every setting runs in each of the ``directions`` asked for; the baselines, which have none,
in the first only.

Per clip, setting and method: mean PSNR / SSIM (RGB) and CIEDE2000 against the original,
PSNR over the first and last 10 scored frames (drift), colourfulness, CDC and the flow warp
error (temporal stability), and the speed of the whole colorizing loop (backend, chroma
upsampling, Lab -> RGB at full size). The ground truth's own colourfulness, CDC and warp
error are reported beside them for scale. All metrics are at the clip's own resolution.
Where a setting scores shots, each method's ``shot_drift`` is the mean drift of its shots of
:data:`DRIFT_SHOT` frames or more, and the keyframes given are counted per minute of the clip.
The report's ``over_clips`` averages each figure per clip, then over the clips (as papers do),
per setting, direction and method.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs

from ..backends.base import Backend
from ..color import l_to_gray
from ..filter import PRESETS, colorize
from ..filter.formats import frame_rgb, gray_clip
from ..filter.options import KEYFRAME_GAPS
from ..filter.postprocess import Finish, finish_rgb, for_backend
from ..filter.reference import initial_state, read_image, reference_lab
from ..filter.resolution import DEFAULT_PIXELS, Geometry
from ..filter.scenes import DEFAULT_THRESHOLD
from ..filter.shots import find
from ..weights.devc import WeightsError, load_nets
from . import clips as clips_mod
from . import metrics
from .baselines import GrayBackend, NaiveBackend

core = vs.core

METHODS = ("gray", "naive", "propagate", "devc")
SETTINGS = ("keyframe", "reference", "shots", "ntire", "placed")
#: Settings whose keyframes are in each shot and that score each shot.
SHOT_SETTINGS = ("shots", "ntire", "placed")
#: The keyframes of the ``ntire`` setting.
NTIRE_FRAMES = (0, 50, 100)
#: Methods scored through the VapourSynth filter; the others are baselines on the direct loop.
FILTER_METHODS = ("propagate", "devc")
#: Methods that need the initial state, so are run in the keyframe setting only.
KEYFRAME_ONLY = ("naive",)
#: Frames at each end of the scored range whose PSNR measures drift.
DRIFT_SPAN = 10
#: Shots at least this long make a method's per-shot drift (as issue #34 measured it).
DRIFT_SHOT = 40
#: Frames matched per ``correspond`` call on the direct loop.
BATCH = 8
#: The filter's default preset, for the direct loop.
DEFAULT_FINISH = PRESETS["default"][0]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def colorize_directly(frames_gray: torch.Tensor, reference: np.ndarray, method: Backend,
                      propagate_init: bool, pixels: int = DEFAULT_PIXELS,
                      finish: Finish = DEFAULT_FINISH) -> Iterator[np.ndarray]:
    """Colorize a gray clip with one backend, frame by frame, in order, without the filter:
    the direct path, for the baselines (which are no filter backends).

    A plain loop of ``prepare`` once,
    ``correspond`` on batches, ``step`` per frame at the filter's internal geometry, then
    the filter's finish (chroma to full size, the backend's default smoothing, gamut fit)
    joins the chroma to the full-resolution L. Unlike the filter it knows no scene cuts:
    the recurrence runs through the whole clip, as in the papers' protocol.

    Args:
        frames_gray: [T, 1, H, W] L (0..100) of the gray clip.
        reference: float32 sRGB [H', W', 3] in [0, 1], the colour reference.
        method: the backend.
        propagate_init: the reference is the clip's frame 0 in colour and also the initial
            state (``last`` of frame 0); else frame 0 starts without state.
        pixels: internal area in pixels.
        finish: the output finish (default: the filter's default preset).

    Yields:
        [H, W, 3] float32 RGB in [0, 1] per frame.
    """
    height, width = frames_gray.shape[-2:]
    geometry = Geometry.fit(width, height, pixels, method.multiple)
    finish = for_backend(finish, method.output_smoothing)
    device = method.device
    prepared = method.prepare(reference_lab(reference, pixels, method.multiple).to(device))
    last = None
    if propagate_init:
        if reference.shape[:2] != (height, width):
            raise ValueError("colorize_directly: an initial state must be the size of the frames")
        last = initial_state(reference, geometry).to(device)
    for start in range(0, len(frames_gray), BATCH):
        batch = frames_gray[start:start + BATCH]
        L = geometry.to_internal(batch).to(device)
        corr = method.correspond(L, prepared)
        for i in range(len(batch)):
            ab = method.step(L[i:i + 1], corr[i], last)
            last = torch.cat((L[i:i + 1], ab), 1)
            yield finish_rgb(batch[i:i + 1], ab.float().cpu(), geometry, finish)[0].movedim(0, -1).numpy()


def make_backend(method: str, device: torch.device) -> Backend:
    """A baseline's backend, for :func:`colorize_directly`."""
    if method == "gray":
        return GrayBackend(device)
    if method == "naive":
        return NaiveBackend(device)
    raise ValueError(f"unknown baseline {method!r}; the filter runs {', '.join(FILTER_METHODS)}")


def colorize_through_filter(frames_gray: torch.Tensor, refs: dict[int, np.ndarray], keyframes: bool,
                            method: str, device: torch.device, weights: str | Path | None = None,
                            direction: str = "both") -> Iterator[np.ndarray]:
    """Colorize a gray clip with ``vsexcolor.colorize`` at its defaults, as users get it.

    Args:
        frames_gray: [T, 1, H, W] L (0..100); the filter gets a GRAYS clip of their gray
            values (the L* of gray R' = G' = B' is L), whose luma its output keeps.
        refs: {first frame: float32 sRGB [H', W', 3] in [0, 1]}.
        keyframes: each reference is its frame in colour (``propagate=True``).
        method: the backend, ``propagate`` or ``devc``.
        direction: as ``colorize``'s.

    Yields:
        [H, W, 3] float32 RGB in [0, 1] per frame: the filter's YUV output converted back
        by its own matrix and range.
    """
    ref = refs[0] if list(refs) == [0] and not keyframes else refs
    out = colorize(_gray_clip(frames_gray), ref, backend=method, weights=weights, propagate=keyframes,
                   device=str(device), direction=direction)
    rgb = vs.core.resize.Bicubic(out, format=vs.RGBS)
    for frame in rgb.frames(prefetch=2, close=True):
        yield frame_rgb(frame)


@dataclass
class _Track:
    """Running per-frame measurements of one output stream."""

    full: bool
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    ciede2000: list[float] = field(default_factory=list)
    colorfulness: list[float] = field(default_factory=list)
    histograms: list[np.ndarray] = field(default_factory=list)
    warp_error: list[float] = field(default_factory=list)
    seconds: float = 0.0
    previous: np.ndarray | None = None

    def add(self, out: np.ndarray, truth: np.ndarray | None,
            motion: tuple[np.ndarray, np.ndarray] | None) -> None:
        if truth is not None:
            self.psnr.append(metrics.psnr(out, truth))
        if self.full:
            if truth is not None:
                self.ssim.append(metrics.ssim(out, truth))
                self.ciede2000.append(metrics.ciede2000(out, truth))
            self.colorfulness.append(metrics.colorfulness(out))
            self.histograms.append(metrics.channel_histograms(out))
            if motion is not None and self.previous is not None:
                self.warp_error.append(metrics.warp_error(self.previous, out, *motion))
            self.previous = out

    def summary(self) -> dict:
        def mean(v: Sequence[float]) -> float | None:
            return float(np.mean(v)) if len(v) else None

        s = {
            "psnr": mean(self.psnr), "ssim": mean(self.ssim), "ciede2000": mean(self.ciede2000),
            "psnr_first": mean(self.psnr[:DRIFT_SPAN]), "psnr_last": mean(self.psnr[-DRIFT_SPAN:]),
            "colorfulness": mean(self.colorfulness),
            "cdc": metrics.cdc(self.histograms) if len(self.histograms) > 1 else None,
            "warp_error": mean(self.warp_error),
        }
        if self.psnr:
            s["fps"] = len(self.psnr) / self.seconds if self.seconds > 0 else None
            s["psnr_per_frame"] = self.psnr
        return {k: v for k, v in s.items() if v is not None}


def score_clip(clip: clips_mod.Clip, setting: str, methods: Sequence[str], reference_rgb: np.ndarray | None = None,
               full: bool = True, device: torch.device | str = "cpu", weights: str | Path | None = None,
               direction: str = "both") -> dict:
    """Run every method on one clip in one setting and score it (see the module doc).

    ``reference_rgb``: float32 sRGB [H, W, 3] in [0, 1], the reference of the ``reference``
    setting (default the clip's far frame). ``full``: every metric, else PSNR only (quick iterations).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
    device = torch.device(device)
    gray = clips_mod.gray_l(clip.frames)
    truth_L = gray[:, 0].numpy()
    colour = clip.frames.astype(np.float32) / 255.0
    if setting == "shots":
        shots = _shots(gray)
        refs, keyframes = {a: colour[a] for a, _ in shots}, True
    elif setting == "ntire":
        shots = _shots(gray)
        refs, keyframes = {k: colour[k] for k in NTIRE_FRAMES if k < len(gray)}, True
    elif setting == "placed":
        shots = _shots(gray)
        refs, keyframes = {k: colour[k] for k in _placed(gray, clip.fps)}, True
    else:
        shots = [(0, len(gray) - 1)]
        keyframes = setting == "keyframe"
        far = clip.far.astype(np.float32) / 255.0 if reference_rgb is None else reference_rgb
        refs = {0: colour[0] if keyframes else far}
    unscored = set(refs) if keyframes else set()
    streams = {m: colorize_through_filter(gray, refs, keyframes, m, device, weights, direction) if m in FILTER_METHODS
               else _directly(gray, shots, refs, keyframes, make_backend(m, device)) for m in methods}
    tracks = {m: _Track(full) for m in methods}
    per_shot = {m: [_Track(False) for _ in shots] for m in methods}
    truth_track = _Track(full)
    shot_of = [i for i, (a, b) in enumerate(shots) for _ in range(a, b + 1)]
    for t in range(len(clip.frames)):
        scored = t not in unscored
        motion = metrics.motion(truth_L[t - 1], truth_L[t]) if full and scored and t - 1 not in unscored \
            and t > 0 and shot_of[t - 1] == shot_of[t] else None
        if scored:
            truth_track.add(colour[t], None, motion)
        for m, stream in streams.items():
            started = time.perf_counter()
            out = next(stream)
            tracks[m].seconds += time.perf_counter() - started
            if scored:
                tracks[m].add(out, colour[t], motion)
                per_shot[m][shot_of[t]].add(out, colour[t], None)
    result = {"clip": clip.name, "setting": setting, "direction": direction, "size": list(clip.frames.shape[1:3]),
              "scored_frames": [t for t in range(len(clip.frames)) if t not in unscored],
              "methods": {m: tr.summary() for m, tr in tracks.items()}}
    if setting in SHOT_SETTINGS:
        result["shots"] = [{"first": a, "last": b, "length": b - a + 1,
                            **{m: _shot_summary(per_shot[m][i]) for m in methods}} for i, (a, b) in enumerate(shots)]
        result["keyframes"] = sorted(refs)
        result["keyframes_per_minute"] = len(refs) / (len(gray) / clip.fps / 60.0)
        for m in methods:
            drifts = [shot[m]["drift"] for shot in result["shots"] if shot["length"] >= DRIFT_SHOT and shot[m]]
            if drifts:
                result["methods"][m]["shot_drift"] = float(np.mean(drifts))
    if full:
        result["truth"] = truth_track.summary()
    return result


def _shot_summary(track: _Track) -> dict:
    """A shot's PSNR and drift (its first 10 scored frames' PSNR less its last 10's)."""
    if not track.psnr:
        return {}
    s = track.summary()
    return {"psnr": s["psnr"], "drift": s["psnr_first"] - s["psnr_last"]}


def _placed(gray: torch.Tensor, fps: float) -> list[int]:
    """The automatic keyframes the filter places in each shot of the gray clip (at ``fps``),
    from the shot's first frame on, at its default ``keyframe_gaps``."""
    clip = core.std.AssumeFPS(_gray_clip(gray), fpsnum=round(fps * 1000), fpsden=1000)
    found = find(clip, DEFAULT_THRESHOLD, pick="first", keyframe_gaps=KEYFRAME_GAPS)
    return [k for shot in found for k in shot.keyframes]


def _shots(gray: torch.Tensor) -> list[tuple[int, int]]:
    """The shots of a gray clip as the filter's cut detector finds them."""
    return [(shot.first, shot.last) for shot in find(_gray_clip(gray), DEFAULT_THRESHOLD, pick="first")]


def _gray_clip(frames_gray: torch.Tensor) -> vs.VideoNode:
    """[T, 1, H, W] L (0..100) -> a GRAYS clip of their gray values (the L* of gray
    R' = G' = B' is L), as the filter takes a black-and-white film."""
    return gray_clip(l_to_gray(frames_gray).clamp(0.0, 1.0)[:, 0].numpy(), vs.GRAYS)


def _directly(gray: torch.Tensor, shots: list[tuple[int, int]], refs: dict[int, np.ndarray], keyframes: bool,
              backend: Backend) -> Iterator[np.ndarray]:
    """A baseline on the direct loop, restarted at each shot with the reference in force."""
    starts = sorted(refs)
    for a, b in shots:
        ref = refs[max(k for k in starts if k <= a)] if a >= starts[0] else refs[starts[0]]
        yield from colorize_directly(gray[a:b + 1], ref, backend, propagate_init=keyframes and a in refs)


def run(clip_specs: Sequence[str], *, frames: int = 120, methods: Sequence[str] = METHODS,
        settings: Sequence[str] = SETTINGS, reference: str | Path | None = None,
        device: torch.device | str = "cpu", weights: str | Path | None = None, full: bool = True,
        directions: Sequence[str] = ("both",), progress: Callable[[str], None] = log) -> dict:
    """The whole benchmark: every clip x setting x direction x method. Returns the JSON-ready report.

    ``reference``: an image file used as the reference of the ``reference`` setting instead
    of each clip's far frame. Methods that cannot run (DEVC without weights) are skipped
    with a note through ``progress``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    device = torch.device(device)
    usable = []
    for m in methods:
        if m == "devc":
            try:
                load_nets(weights)
            except WeightsError as e:
                progress(f"skipping devc: {e}")
                continue
        usable.append(m)
    reference_rgb = read_image(reference) if reference else None
    results = []
    for spec in clip_specs:
        clip = clips_mod.load(clips_mod.resolve(spec), frames)
        for setting in settings:
            for i, direction in enumerate(directions):
                chosen = [m for m in usable if (setting != "reference" or m not in KEYFRAME_ONLY)
                          and (i == 0 or m in FILTER_METHODS)]
                if not chosen:
                    continue
                progress(f"{clip.name} ({len(clip.frames)} frames, {setting}, {direction}): {', '.join(chosen)}")
                results.append(score_clip(clip, setting, chosen, reference_rgb, full, device, weights, direction))
    return {"frames": frames, "device": str(device), "methods": usable,
            "reference": None if reference is None else str(reference), "results": results,
            "over_clips": over_clips(results)}


def over_clips(results: Sequence[dict]) -> list[dict]:
    """Each figure of each setting, direction and method averaged over the clips that have it
    (each clip's figure is already its mean over frames or shots), with the clips counted."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        for method, scores in r["methods"].items():
            groups.setdefault((r["setting"], r["direction"], method), []).append(
                {**scores, "keyframes_per_minute": r.get("keyframes_per_minute")})
    rows = []
    for (setting, direction, method), per_clip in groups.items():
        keys = [k for k in dict.fromkeys(k for scores in per_clip for k in scores)
                if all(isinstance(scores.get(k), (int, float)) for scores in per_clip)]
        rows.append({"setting": setting, "direction": direction, "method": method, "clips": len(per_clip),
                     **{k: float(np.mean([scores[k] for scores in per_clip])) for k in keys}})
    return rows


COLUMNS = (("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("ciede2000", "dE00", "{:.2f}"),
           ("psnr_first", "PSNR1st", "{:.2f}"), ("psnr_last", "PSNRlast", "{:.2f}"),
           ("shot_drift", "drift", "{:.2f}"), ("colorfulness", "colour", "{:.1f}"), ("cdc", "CDC", "{:.5f}"),
           ("warp_error", "Ewarp", "{:.5f}"), ("keyframes_per_minute", "kf/min", "{:.1f}"), ("fps", "fps", "{:.1f}"))
#: Columns of text before the figures.
_NAMES = 4


def table(report: dict) -> str:
    """The report as an aligned text table, one row per clip, setting, direction and method
    (and the ground truth's own temporal figures), then the means over clips (clip "mean")."""
    header = ["clip", "setting", "direction", "method", *(title for _, title, _ in COLUMNS)]
    rows = []
    for r in report["results"]:
        entries = list(r["methods"].items()) + ([("truth", r["truth"])] if "truth" in r else [])
        for name, s in entries:
            s = {**s, "keyframes_per_minute": r["keyframes_per_minute"]} if "keyframes_per_minute" in r else s
            rows.append([r["clip"], r["setting"], r["direction"], name,
                         *(fmt.format(s[key]) if key in s else "-" for key, _, fmt in COLUMNS)])
    if len({r["clip"] for r in report["results"]}) > 1:
        for s in report["over_clips"]:
            rows.append(["mean", s["setting"], s["direction"], s["method"],
                         *(fmt.format(s[key]) if key in s else "-" for key, _, fmt in COLUMNS)])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).rjust(w) if i >= _NAMES else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in (header, *rows)]
    return "\n".join(lines)


def _finite(x):
    """JSON has no infinity: infinite PSNRs (identical frames) are written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(_finite(report), indent=1) + "\n")


def plot_psnr(report: dict, path: Path) -> None:
    """PNG: PSNR per frame per method, one panel per clip (rows) and setting and direction (columns)."""
    # The object API renders with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    results = report["results"]
    clip_names = list(dict.fromkeys(r["clip"] for r in results))
    columns = list(dict.fromkeys((r["setting"], r["direction"]) for r in results))
    fig = Figure(figsize=(6 * len(columns), 3.2 * len(clip_names)))
    axes = fig.subplots(len(clip_names), len(columns), squeeze=False)
    for r in results:
        ax = axes[clip_names.index(r["clip"])][columns.index((r["setting"], r["direction"]))]
        frames = r["scored_frames"]
        for name, s in r["methods"].items():
            v = s.get("psnr_per_frame", [])
            ax.plot(frames[:len(v)], v, label=name, linewidth=1)
        for shot in r.get("shots", [])[1:]:
            ax.axvline(shot["first"], color="gray", linewidth=0.6, linestyle=":")
        ax.set_title(f"{r['clip']} - {r['setting']}, {r['direction']}")
        ax.set_xlabel("frame")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
