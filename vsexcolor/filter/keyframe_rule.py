"""Where a long shot needs another keyframe: when its last keyframe no longer explains the picture.

A keyframe's colours reach a frame through the recurrence; once most of the frame shows
what the keyframe did not (the camera has panned on, a figure has turned), the colours fade
or drift whatever the fusion does. :func:`explained` measures that on the luminance alone,
so it can run while a film is planned, before anything is coloured; :func:`place` turns it
into keyframes within a shortest and a longest gap (``benchmarks/both_ways.py`` measured
the defaults).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..backends import flow as of

#: Pixels of the frames :func:`explained` compares: the flow is worked out small (cheap, and
#: the measure is about the frame's large parts).
EXPLAINED_PIXELS = 192 * 108
#: L difference (CIE units) up to which a flow's landing point counts as the same surface.
LUMA_TOLERANCE = 6.0
#: Defaults of :func:`place` (see benchmarks/README.md, "both_ways.py").
MIN_GAP_S = 1.6
MAX_GAP_S = 4.0
THRESHOLD = 0.6


def _small(L: torch.Tensor) -> np.ndarray:
    """[..., H, W] L -> [h, w] float32 numpy of about :data:`EXPLAINED_PIXELS` (never enlarged)."""
    h, w = L.shape[-2:]
    scale = min(1.0, math.sqrt(EXPLAINED_PIXELS / (h * w)))
    x = L.reshape(1, 1, h, w).float()
    size = (max(8, round(h * scale)), max(8, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0, 0].numpy()


def explained(key_L: torch.Tensor, L: torch.Tensor) -> float:
    """How much of a frame its keyframe still explains, 0..1.

    The fraction of the frame's pixels whose optical flow to the keyframe stays inside it,
    is forward-backward consistent and lands on a luminance within :data:`LUMA_TOLERANCE`:
    the pixels whose colours can be carried from the keyframe. Both [..., H, W] L (0..100)
    of one size; 1 for the keyframe itself.
    """
    key, frame = _small(key_L), _small(L)
    to_key = of.flow(frame, key)
    consistent = of.consistency(to_key, of.flow(key, frame)) < 1.0
    lands = np.abs(of.warp(key, to_key) - frame) < LUMA_TOLERANCE
    return float((consistent & lands & ~of.outside(to_key)).mean())


def place(L: Callable[[int], torch.Tensor], length: int, fps: float, *, min_gap: float = MIN_GAP_S,
          max_gap: float = MAX_GAP_S, threshold: float = THRESHOLD) -> list[int]:
    """The keyframes of one shot, as frame offsets into it (sorted; 0 always first).

    Args:
        L: ``L(i)`` -> [1, 1, H, W] L (0..100) of the shot's frame i.
        length: frames in the shot (>= 1).
        fps: its frame rate (> 0).
        min_gap, max_gap: the shortest and longest gap between keyframes, in seconds
            (0 < min_gap <= max_gap).
        threshold: a frame at least ``min_gap`` after the last keyframe becomes one when
            :func:`explained` by that keyframe falls below this (0..1).

    The shot's last frame is a keyframe as well when it lies ``min_gap`` or more after the
    last one (the frames before it are then coloured both ways instead of forward alone),
    and a keyframe due within ``min_gap`` of the shot's end is put on its last frame instead.
    """
    if length < 1 or fps <= 0 or not 0 < min_gap <= max_gap:
        raise ValueError(f"place: need length >= 1, fps > 0, 0 < min_gap <= max_gap; got {length}, {fps}, "
                         f"{min_gap}, {max_gap}")
    shortest, longest = max(1, round(min_gap * fps)), max(1, round(max_gap * fps))
    keys = [0]
    key_L = L(0)
    for i in range(shortest, length):
        gap = i - keys[-1]
        if gap < shortest or (gap < longest and explained(key_L, L(i)) >= threshold):
            continue
        if length - 1 - i < shortest:
            break
        keys.append(i)
        key_L = L(i)
    if length - 1 - keys[-1] >= shortest:
        keys.append(length - 1)
    return keys
