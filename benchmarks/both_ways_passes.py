"""The forward and backward passes of ``benchmarks/both_ways.py``, run on the propagate
backend directly (no VapourSynth graph), with the per-pixel evidence a fusion may use.

A pass between two keyframes p < q of a shot is what ``vsexcolor.colorize(...,
propagate=True)`` computes for the frames p + 1 .. q - 1: the recurrence restarted at the
keyframe, its colour frame the reference and the initial state. The backward pass is the
same run on the frames q, q - 1, .. p + 1 from keyframe q. ``both_ways.py --check`` compares
the forward pass with the filter's output.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import vapoursynth as vs

from vsexcolor.backends import flow as of
from vsexcolor.backends.propagate import PropagateBackend
from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.reference import initial_state, reference_lab
from vsexcolor.filter.resolution import DEFAULT_PIXELS, Geometry

#: Frames per correspondence batch, as the filter's default.
BATCH = 4


class RecordingBackend(PropagateBackend):
    """The propagate backend, unchanged in what it computes, keeping the per-pixel
    confidences of its last step in :attr:`seen` ([h, w] float32 numpy, 0..1):

    - ``match``: the correspondence's confidence (direct flow to the keyframe, and the
      descriptor match); the engine has it without any change to the backend;
    - ``prop``: the propagated colour's weight (flow from the frame before);
    - ``certainty``: the two combined, what the backend's own fill trusts.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, np.ndarray] = {}

    def step(self, L, corr, last):
        self.seen = {"match": corr.confidence[0, 0].float().cpu().numpy()}
        return super().step(L, corr, last)

    def _propagate(self, L, last, reference_confidence):
        ab, weight = super()._propagate(L, last, reference_confidence)
        self.seen["prop"] = weight.astype(np.float32)
        return ab, weight

    def _fuse(self, L, ab, certainty):
        self.seen["certainty"] = certainty.astype(np.float32)
        return super()._fuse(L, ab, certainty)


@dataclass
class Pass:
    """One direction's outputs on the frames between keyframes: per frame t, ``ab[t]``
    [2, h, w] and ``evidence[name][t]`` [h, w]; ``seconds`` spent in the backend."""

    ab: dict[int, np.ndarray] = field(default_factory=dict)
    evidence: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0
    frames: int = 0


def clip_luma(gray: vs.VideoNode) -> torch.Tensor:
    """[T, 1, H, W] L (0..100) of a gray clip, as the filter reads it (:class:`Luma`)."""
    luma = Luma(gray, colour_props(gray, gray.get_frame(0).props))
    return torch.cat([luma.L(f) for f in luma.clip.frames(close=True)])


def geometry_of(L: torch.Tensor, pixels: int = DEFAULT_PIXELS) -> Geometry:
    return Geometry.fit(L.shape[-1], L.shape[-2], pixels, PropagateBackend.multiple)


def run_segment(backend: RecordingBackend, L: torch.Tensor, order: list[int], key_rgb: np.ndarray,
                geometry: Geometry, pixels: int, into: Pass, chain: bool) -> None:
    """Step the recurrence over frames ``order`` (the keyframe first) from its colour frame
    ``key_rgb``; record every frame but the keyframe into ``into``.

    ``chain``: also record ``chain``, the product of the propagated weights along the pass,
    carried along the frame-to-frame flow (one extra DIS flow per frame: research only).
    """
    prepared = backend.prepare(reference_lab(key_rgb, pixels, backend.multiple))
    last = initial_state(key_rgb, geometry)
    internal = geometry.to_internal(L[order])
    acc = None
    for start in range(0, len(order), BATCH):
        started = time.process_time()
        corr = backend.correspond(internal[start:start + BATCH], prepared)
        into.seconds += time.process_time() - started
        for i in range(len(corr.lab)):
            n = start + i
            started = time.process_time()
            ab = backend.step(internal[n:n + 1], corr[i], last)
            into.seconds += time.process_time() - started
            previous, last = last, torch.cat((internal[n:n + 1], ab), 1)
            if n == 0:
                continue
            t = order[n]
            into.frames += 1
            into.ab[t] = ab[0].numpy()
            seen = dict(backend.seen)
            if chain:
                here, before = internal[n, 0].numpy(), previous[0, 0].numpy()
                acc = np.ones_like(here) if acc is None else acc
                acc = of.warp(acc, of.flow(here, before, backend.flow_preset)) * seen["prop"]
                seen["chain"] = acc
            for name, value in seen.items():
                into.evidence.setdefault(name, {})[t] = value


def both_passes(L: torch.Tensor, colour: np.ndarray, keyframes: list[int], shots: list[tuple[int, int]],
                pixels: int = DEFAULT_PIXELS, chain: bool = True) -> tuple[Pass, Pass, Geometry]:
    """Forward and backward passes of every shot (first, last frame) of a clip: between
    consecutive ``keyframes`` (sorted frame numbers, each shot's first frame among them)
    both ways, after a shot's last keyframe forward only. ``colour``: [T, H, W, 3] float32
    sRGB ground truth, the keyframes' colours."""
    geometry = geometry_of(L, pixels)
    backend = RecordingBackend()
    forward, backward = Pass(), Pass()
    for first, last in shots:
        keys = [k for k in keyframes if first <= k <= last]
        for p, q in zip(keys, keys[1:] + [last + 1]):
            if q - p < 2:
                continue
            run_segment(backend, L, list(range(p, q)), colour[p], geometry, pixels, forward, chain)
            if q <= last:
                run_segment(backend, L, list(range(q, p, -1)), colour[q], geometry, pixels, backward, chain)
    return forward, backward, geometry
