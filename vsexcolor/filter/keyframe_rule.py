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


def small(L: torch.Tensor) -> np.ndarray:
    """[..., H, W] L -> [h, w] float32 numpy of about :data:`EXPLAINED_PIXELS` (never enlarged):
    a frame as :func:`explained` compares it."""
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
    return explained_small(small(key_L), small(L))


def explained_small(key: np.ndarray, frame: np.ndarray) -> float:
    """:func:`explained` of two frames already made :func:`small`."""
    to_key = of.flow(frame, key)
    consistent = of.consistency(to_key, of.flow(key, frame)) < 1.0
    lands = np.abs(of.warp(key, to_key) - frame) < LUMA_TOLERANCE
    return float((consistent & lands & ~of.outside(to_key)).mean())


def gap_frames(min_gap: float, max_gap: float, fps: float) -> tuple[int, int]:
    """The shortest and longest gap between keyframes in frames, from seconds (0 < min_gap <=
    max_gap) at ``fps`` (> 0): at least 1 each."""
    if fps <= 0 or not 0 < min_gap <= max_gap:
        raise ValueError(f"need fps > 0 and 0 < min_gap <= max_gap; got {fps}, {min_gap}, {max_gap}")
    return max(1, round(min_gap * fps)), max(1, round(max_gap * fps))


class Walk:
    """:func:`place` one frame at a time in one *window* of a shot, whose end is not known
    yet: :meth:`add` its frames in order from the window's first keyframe on, then
    :meth:`end` after the shot's last or :meth:`close` after the window's last.

    A window is ``length`` frames from its first keyframe (offset 0), and the next window
    starts with a keyframe of its own, so that a window's keyframes depend on its frames
    alone: a late start in a long shot walks one window, not the shot from its start.
    Within it, a frame ``shortest`` or more after the last keyframe and ``shortest`` or more
    before the next window becomes a keyframe when the last keyframe explains less of it than
    ``threshold``. Such a frame is *pending* until the shot is seen to go on ``shortest``
    frames past it (a keyframe due that near the shot's end goes to its last frame instead),
    so :attr:`keys` only grows and is always true: the keyframes of the frames
    :meth:`decided` covers, as offsets from the first.
    """

    def __init__(self, shortest: int, length: int, threshold: float = THRESHOLD) -> None:
        if not 1 <= shortest <= length:
            raise ValueError(f"Walk: need 1 <= shortest <= length frames, got {shortest}, {length}")
        self.shortest, self.length, self.threshold = shortest, length, threshold
        self.keys: tuple[int, ...] = ()
        self.added = 0
        #: The shot ends in this window (:meth:`end`), or goes on past it (:meth:`close`).
        self.ended = self.closed = False
        self._pending: int | None = None
        self._key: np.ndarray | None = None  # the last keyframe, pending or not, made small

    def add(self, frame: np.ndarray) -> None:
        """The window's next frame, made :func:`small`."""
        i, self.added = self.added, self.added + 1
        if i == 0:
            self.keys, self._key = (0,), frame
            return
        if self._pending is not None and i - self._pending >= self.shortest:
            self.keys, self._pending = (*self.keys, self._pending), None
        gap = i - (self.keys[-1] if self._pending is None else self._pending)
        if gap < self.shortest or i > self.length - self.shortest or \
                explained_small(self._key, frame) >= self.threshold:
            return
        self._pending, self._key = i, frame

    def end(self) -> None:
        """The frame added last was the shot's last: a keyframe pending is dropped (the shot
        ends within ``shortest`` of it), and the last frame is one when it lies ``shortest``
        or more after the last keyframe."""
        last = self.added - 1
        if last - self.keys[-1] >= self.shortest:
            self.keys = (*self.keys, last)
        self.ended, self._pending, self._key = True, None, None

    def close(self) -> None:
        """The frame added last was the window's last, and the shot goes on: a keyframe
        pending is one (no later than ``shortest`` before the next window's first)."""
        if self._pending is not None:
            self.keys = (*self.keys, self._pending)
        self.closed, self._pending, self._key = True, None, None

    def decided(self) -> int:
        """Offsets 0 .. this (inclusive) have their keyframes in :attr:`keys` for good."""
        return self.added if self.ended or self.closed else self.added - 1 - self.shortest


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

    Every ``max_gap`` from the first frame is a keyframe (the shot's windows, see
    :class:`Walk`); between them another where the picture has moved on, no nearer than
    ``min_gap`` to either. The shot's last frame is a keyframe as well when it lies
    ``min_gap`` or more after the last one (the frames before it are then coloured both ways
    instead of forward alone), and a keyframe due within ``min_gap`` of the shot's end is put
    on its last frame instead.
    """
    if length < 1:
        raise ValueError(f"place: need length >= 1, got {length}")
    shortest, longest = gap_frames(min_gap, max_gap, fps)
    keys: list[int] = []
    for first in range(0, length, longest):
        walk = Walk(shortest, longest, threshold)
        for i in range(first, min(first + longest, length)):
            walk.add(small(L(i)))
        walk.end() if first + longest >= length else walk.close()
        keys += [first + k for k in walk.keys]
    return keys
