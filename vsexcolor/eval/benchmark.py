"""Colorize gray versions of colour clips and score them against the colour originals.

Two settings:

* ``keyframe``: the clip's colour frame 0 is the reference and the initial state (the
  authors' propagation mode); frame 0 is an input then, so frames 1.. are scored.
* ``reference``: a colour frame far from the scored ones (see :class:`.clips.Clip`), or a
  given image, is the reference and there is no initial state; all frames are scored.

Per clip, setting and method: mean PSNR / SSIM (RGB) and CIEDE2000 against the original,
PSNR over the first and last 10 scored frames (drift), colourfulness, CDC and the flow warp
error (temporal stability), and the speed of the whole colorizing loop (backend, chroma
upsampling, Lab -> RGB at full size). The ground truth's own colourfulness, CDC and warp
error are reported beside them for scale. All metrics are at the clip's own resolution.
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

from ..backends.base import Backend
from ..backends.propagate import PropagateBackend
from ..filter import PRESETS
from ..postprocess import Finish, finish_rgb, for_backend
from ..reference import initial_state, read_image
from ..reference import to_lab as reference_lab
from ..resolution import DEFAULT_PIXELS, Geometry
from ..weights import WeightsError, load_nets
from . import clips as clips_mod
from . import metrics
from .baselines import GrayBackend, NaiveBackend

METHODS = ("gray", "naive", "propagate", "devc")
SETTINGS = ("keyframe", "reference")
#: Methods that need the initial state, so are run in the keyframe setting only.
KEYFRAME_ONLY = ("naive",)
#: Frames at each end of the scored range whose PSNR measures drift.
DRIFT_SPAN = 10
#: Frames matched per ``correspond`` call.
BATCH = 8
#: The filter's default preset: the scores are those of what users get.
DEFAULT_FINISH = PRESETS["default"][0]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def colorize_frames(frames_gray: torch.Tensor, reference: np.ndarray, method: Backend,
                    propagate_init: bool, pixels: int = DEFAULT_PIXELS,
                    finish: Finish = DEFAULT_FINISH) -> Iterator[np.ndarray]:
    """Colorize a gray clip with one backend, frame by frame, in order.

    The one place the benchmark drives a backend: a plain loop of ``prepare`` once,
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
            raise ValueError("colorize_frames: an initial state must be the size of the frames")
        last = initial_state(reference, geometry).to(device)
    for start in range(0, len(frames_gray), BATCH):
        batch = frames_gray[start:start + BATCH]
        L = geometry.to_internal(batch).to(device)
        corr = method.correspond(L, prepared)
        for i in range(len(batch)):
            ab = method.step(L[i:i + 1], corr[i], last)
            last = torch.cat((L[i:i + 1], ab), 1)
            yield finish_rgb(batch[i:i + 1], ab.float().cpu(), geometry, finish)[0].movedim(0, -1).numpy()


def make_backend(method: str, device: torch.device, weights: str | Path | None = None) -> Backend:
    """The backend for a method name; DEVC needs its weights (``weights``: their location,
    default where :mod:`vsexcolor.weights` looks), else :class:`WeightsError`."""
    if method == "gray":
        return GrayBackend(device)
    if method == "naive":
        return NaiveBackend(device)
    if method == "propagate":
        return PropagateBackend(device=device)
    if method == "devc":
        from ..backends.devc import DevcBackend
        return DevcBackend(*load_nets(weights), device=device)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


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


def score_clip(clip: clips_mod.Clip, setting: str, backends: dict[str, Backend],
               reference_rgb: np.ndarray | None = None, full: bool = True) -> dict:
    """Run every backend on one clip in one setting and score it (see the module doc).

    ``reference_rgb``: float32 sRGB [H, W, 3] in [0, 1], the reference of the ``reference``
    setting (default the clip's far frame). ``full``: every metric, else PSNR only (quick iterations).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
    keyframe = setting == "keyframe"
    gray = clips_mod.gray_l(clip.frames)
    truth_L = gray[:, 0].numpy()
    if keyframe:
        reference = clip.frames[0].astype(np.float32) / 255.0
    else:
        reference = clip.far.astype(np.float32) / 255.0 if reference_rgb is None else reference_rgb
    first = 1 if keyframe else 0
    streams = {m: colorize_frames(gray, reference, b, propagate_init=keyframe) for m, b in backends.items()}
    tracks = {m: _Track(full) for m in backends}
    truth_track = _Track(full)
    for t in range(len(clip.frames)):
        truth = clip.frames[t].astype(np.float32) / 255.0
        scored = t >= first
        motion = metrics.motion(truth_L[t - 1], truth_L[t]) if full and t > first else None
        if scored:
            truth_track.add(truth, None, motion)
        for m, stream in streams.items():
            started = time.perf_counter()
            out = next(stream)
            tracks[m].seconds += time.perf_counter() - started
            if scored:
                tracks[m].add(out, truth, motion)
    result = {"clip": clip.name, "setting": setting, "size": list(clip.frames.shape[1:3]),
              "scored_frames": [first, len(clip.frames) - 1],
              "methods": {m: tr.summary() for m, tr in tracks.items()}}
    if full:
        result["truth"] = truth_track.summary()
    return result


def run(clip_specs: Sequence[str], *, frames: int = 120, methods: Sequence[str] = METHODS,
        settings: Sequence[str] = SETTINGS, reference: str | Path | None = None,
        device: torch.device | str = "cpu", weights: str | Path | None = None, full: bool = True,
        progress: Callable[[str], None] = log) -> dict:
    """The whole benchmark: every clip x setting x method. Returns the JSON-ready report.

    ``reference``: an image file used as the reference of the ``reference`` setting instead
    of each clip's far frame. Methods that cannot run (DEVC without weights) are skipped
    with a note through ``progress``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    device = torch.device(device)
    backends: dict[str, Backend] = {}
    for m in methods:
        try:
            backends[m] = make_backend(m, device, weights)
        except WeightsError as e:
            progress(f"skipping devc: {e}")
    reference_rgb = read_image(reference) if reference else None
    results = []
    for spec in clip_specs:
        clip = clips_mod.load(clips_mod.resolve(spec), frames)
        for setting in settings:
            chosen = {m: b for m, b in backends.items()
                      if setting == "keyframe" or m not in KEYFRAME_ONLY}
            progress(f"{clip.name} ({len(clip.frames)} frames, {setting}): {', '.join(chosen)}")
            results.append(score_clip(clip, setting, chosen, reference_rgb, full))
    return {"frames": frames, "device": str(device), "methods": list(backends),
            "reference": None if reference is None else str(reference), "results": results}


COLUMNS = (("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("ciede2000", "dE00", "{:.2f}"),
           ("psnr_first", "PSNR1st", "{:.2f}"), ("psnr_last", "PSNRlast", "{:.2f}"),
           ("colorfulness", "colour", "{:.1f}"), ("cdc", "CDC", "{:.5f}"),
           ("warp_error", "Ewarp", "{:.5f}"), ("fps", "fps", "{:.1f}"))


def table(report: dict) -> str:
    """The report as an aligned text table, one row per clip, setting and method (and the
    ground truth's own temporal figures)."""
    header = ["clip", "setting", "method", *(title for _, title, _ in COLUMNS)]
    rows = []
    for r in report["results"]:
        entries = list(r["methods"].items()) + ([("truth", r["truth"])] if "truth" in r else [])
        for name, s in entries:
            rows.append([r["clip"], r["setting"], name,
                         *(fmt.format(s[key]) if key in s else "-" for key, _, fmt in COLUMNS)])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).rjust(w) if i > 2 else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
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
    """PNG: PSNR per frame per method, one panel per clip (rows) and setting (columns)."""
    # The object API renders with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    results = report["results"]
    clip_names = list(dict.fromkeys(r["clip"] for r in results))
    setting_names = list(dict.fromkeys(r["setting"] for r in results))
    fig = Figure(figsize=(6 * len(setting_names), 3.2 * len(clip_names)))
    axes = fig.subplots(len(clip_names), len(setting_names), squeeze=False)
    for r in results:
        ax = axes[clip_names.index(r["clip"])][setting_names.index(r["setting"])]
        first = r["scored_frames"][0]
        for name, s in r["methods"].items():
            v = s.get("psnr_per_frame", [])
            ax.plot(range(first, first + len(v)), v, label=name, linewidth=1)
        ax.set_title(f"{r['clip']} - {r['setting']}")
        ax.set_xlabel("frame")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
