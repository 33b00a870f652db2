"""A shot's automatic keyframes, found from its frames read in order.

A shot without a reference of its own is coloured from automatic keyframes: its *pick*
(the sharpest frame of its opening, or its first) and, in a long shot, more after it where
the picture has moved on from the last (:mod:`.keyframe_rule`). Each keyframe depends on the
one before it, so they are found walking forward through the shot, one frame at a time
(:class:`ShotKeyframes`); what is found only grows and is always true, whatever order the
frames' colours are asked for in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .keyframe_rule import THRESHOLD, Walk, small


@dataclass(frozen=True)
class Rule:
    """How a shot's automatic keyframes are found.

    ``span``: frames of its opening the pick chooses the sharpest of (1: its first frame);
    ``gaps``: the shortest and longest gap between two keyframes in frames, None for one
    keyframe a shot; ``threshold``: see :func:`~vsexcolor.filter.keyframe_rule.place`.
    """

    span: int
    gaps: tuple[int, int] | None
    threshold: float = THRESHOLD

    @property
    def ahead(self) -> int:
        """Frames past frame n of a shot that must be read to know n's keyframe and the one
        after it: the pick's opening, and a keyframe is due at most ``longest`` after the
        last and is sure once the shot goes on ``shortest`` past it (one frame more to see
        the shot go on)."""
        return self.span if self.gaps is None else max(self.span, self.gaps[0] + self.gaps[1] + 1)


def sharpness(L: torch.Tensor) -> float:
    """Variance of the Laplacian of a frame's L (0..100, [..., H, W]): low for motion blur,
    defocus and fades, so the sharpest frame of a shot's opening is the one to colour."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    x = L.double().reshape(1, 1, *L.shape[-2:])
    return float(torch.nn.functional.conv2d(x, kernel[None, None]).var())


class ShotKeyframes:
    """The automatic keyframes of the shot starting at ``start``, as far as its frames fed
    in order (:meth:`feed`) tell them.

    The pick is the sharpest (the earliest of equals) of the shot's first ``rule.span``
    frames; the walk of :class:`~vsexcolor.filter.keyframe_rule.Walk` starts there. Until
    the pick is known the opening's frames wait, made small (about 83 KB each); once the
    shot has ended only the keyframes' numbers are kept.
    """

    def __init__(self, start: int, rule: Rule) -> None:
        self.start, self.rule = start, rule
        #: The next frame to feed.
        self.fed = start
        self.ended = False
        self.pick: int | None = None
        self._opening: list[tuple[float, np.ndarray | None]] = []
        self._walk = None if rule.gaps is None else Walk(*rule.gaps, rule.threshold)

    def feed(self, L: torch.Tensor, last: bool) -> None:
        """Frame :attr:`fed`'s L (0..100, [..., H, W], any fixed size); ``last``: the shot
        ends with it."""
        if self.pick is None:
            self._opening.append((sharpness(L), None if self._walk is None else small(L)))
            if last or len(self._opening) == self.rule.span:
                self._choose()
        elif self._walk is not None:
            self._walk.add(small(L))
        self.fed += 1
        if last:
            self.ended = True
            if self._walk is not None:
                self._walk.end()

    def _choose(self) -> None:
        best = max(range(len(self._opening)), key=lambda j: (self._opening[j][0], -j))
        self.pick = self.start + best
        if self._walk is not None:
            for _, frame in self._opening[best:]:
                self._walk.add(frame)
        self._opening = []

    @property
    def keyframes(self) -> tuple[int, ...]:
        """The keyframes known for good, sorted: the pick first."""
        if self.pick is None:
            return ()
        return (self.pick,) if self._walk is None else tuple(self.pick + k for k in self._walk.keys)

    def decided(self, n: int) -> bool:
        """Are frame n's keyframe and the keyframes before it known for good?"""
        if self.ended:
            return True
        if self.pick is None:
            return False
        return self._walk is None or n < self.pick or n - self.pick <= self._walk.decided()

    def segment_start(self, n: int) -> int:
        """Where frame n's recurrence starts (:meth:`decided` must hold): the shot's start
        before the pick, else the last keyframe at or before n."""
        if n < self.pick:
            return self.start
        return max(k for k in self.keyframes if k <= n)

    def known_after(self, k: int) -> bool:
        """Is the keyframe after keyframe ``k`` (or that there is none) known?"""
        return self.ended or self.pick is not None and (self._walk is None or any(key > k for key in self.keyframes))

    def after(self, k: int) -> int | None:
        """The keyframe after keyframe ``k`` (:meth:`known_after` must hold), None if none."""
        return next((key for key in self.keyframes if key > k), None)
