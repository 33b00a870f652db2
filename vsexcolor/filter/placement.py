"""A shot's automatic keyframes, found from its frames read in order.

A shot without a reference of its own is coloured from automatic keyframes: its *pick*
(the sharpest frame of its opening, or its first) and, in a long shot, more after it
(:mod:`.keyframe_rule`): one at the start of each *window* of ``longest`` frames from the
shot's first, and between them another where the picture has moved on from the last. A
window's keyframes depend on its own frames alone, found walking forward through it one
frame at a time (:class:`ShotKeyframes`), so frame n's keyframes cost the frames of n's
window, wherever it lies in the shot; what is found only grows and is always true,
whatever order the frames' colours are asked for in.
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
    def opening(self) -> int:
        """Frames the pick chooses among: ``span``, and with gaps at most ``longest -
        shortest`` of them, so that the pick lies ``shortest`` or more before the second
        window."""
        return self.span if self.gaps is None else max(1, min(self.span, self.gaps[1] - self.gaps[0]))

    def window(self, start: int, n: int) -> int:
        """Which window of the shot starting at ``start`` holds frame n (0: the first, and
        every frame where there are no gaps)."""
        return 0 if self.gaps is None else (n - start) // self.gaps[1]

    def window_start(self, start: int, window: int) -> int:
        """The first frame of a window of the shot starting at ``start``."""
        return start if self.gaps is None else start + window * self.gaps[1]

    def window_first(self, start: int, n: int) -> int:
        """The first frame of the window holding frame n of the shot starting at ``start``
        (the shot's first frame for the opening, and where there are no gaps)."""
        return self.window_start(start, self.window(start, n))

    def walk_through(self, start: int, n: int) -> int:
        """The frame of the shot starting at ``start`` through which its frames must be
        walked to know frame n's keyframe and the next: the last of n's window, or of the
        opening where there are no gaps (the shot may end before it)."""
        if self.gaps is None:
            return start + self.opening - 1
        return self.window_first(start, n) + self.gaps[1] - 1


def sharpness(L: torch.Tensor) -> float:
    """Variance of the Laplacian of a frame's L (0..100, [..., H, W]): low for motion blur,
    defocus and fades, so the sharpest frame of a shot's opening is the one to colour."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    x = L.double().reshape(1, 1, *L.shape[-2:])
    return float(torch.nn.functional.conv2d(x, kernel[None, None]).var())


class ShotKeyframes:
    """The automatic keyframes of the shot starting at ``start``, as far as its frames fed
    (:meth:`feed`) tell them.

    The pick is the sharpest (the earliest of equals) of the shot's first ``rule.opening``
    frames; the first window's walk (:class:`~vsexcolor.filter.keyframe_rule.Walk`) starts
    there, each later window's at its first frame. Each window is fed in order from its
    first frame, the windows in any order. Until the pick is known the opening's frames
    wait, made small (about 83 KB each); once a window is walked only its keyframes'
    numbers are kept.
    """

    def __init__(self, start: int, rule: Rule) -> None:
        self.start, self.rule = start, rule
        #: The shot's last frame, once a frame fed has told it.
        self.last: int | None = None
        self.pick: int | None = None
        self._opening: list[tuple[float, np.ndarray | None]] = []
        self._walks: dict[int, Walk] = {}  # by window (0: from the pick)

    def _window(self, n: int) -> int:
        return self.rule.window(self.start, n)

    def _origin(self, window: int) -> int:
        """Where a window's walk starts: the pick for the first, else its first frame."""
        return self.pick if window == 0 else self.rule.window_start(self.start, window)

    def next_frame(self, n: int) -> int:
        """The next frame to feed on the way to frame n: of the opening, or of n's window."""
        window = self._window(n)
        if window == 0 and self.pick is None:
            return self.start + len(self._opening)
        walk = self._walks.get(window)
        return self._origin(window) + (0 if walk is None else walk.added)

    def walked(self, n: int) -> bool:
        """Are the frames of n's window through n fed (or, where there are no gaps, the
        opening), or does the shot end before n?"""
        if self.last is not None and n > self.last:
            return True
        if self.rule.gaps is None:
            return self.pick is not None or self.next_frame(n) > n
        return self.next_frame(n) > n

    def feed(self, n: int, L: torch.Tensor, last: bool) -> None:
        """Frame n's L (0..100, [..., H, W], any fixed size): n must be :meth:`next_frame`
        of itself; ``last``: the shot ends with it."""
        if n != self.next_frame(n):
            raise ValueError(f"ShotKeyframes.feed: frame {n} fed before frame {self.next_frame(n)}")
        if last:
            self.last = n
        window = self._window(n)
        if window == 0 and self.pick is None:
            self._opening.append((sharpness(L), None if self.rule.gaps is None else small(L)))
            if last or len(self._opening) == self.rule.opening:
                self._choose(last)
            return
        walk = self._walks.get(window)
        if walk is None:
            walk = self._walks[window] = Walk(self.rule.gaps[0], self.rule.gaps[1], self.rule.threshold)
        walk.add(small(L))
        self._ended(window, n, last)

    def _ended(self, window: int, n: int, last: bool) -> None:
        """After frame n of ``window``'s walk: does the shot end there, or the window?"""
        walk = self._walks[window]
        if last:
            walk.end()
        elif n == self.rule.walk_through(self.start, n):  # the window's last frame
            walk.close()

    def _choose(self, last: bool) -> None:
        best = max(range(len(self._opening)), key=lambda j: (self._opening[j][0], -j))
        self.pick = self.start + best
        if self.rule.gaps is not None:
            shortest, longest = self.rule.gaps
            walk = self._walks[0] = Walk(shortest, longest - best, self.rule.threshold)
            for _, frame in self._opening[best:]:
                walk.add(frame)
            self._ended(0, self.start + len(self._opening) - 1, last)
        self._opening = []

    @property
    def keyframes(self) -> tuple[int, ...]:
        """The keyframes known for good, sorted: the pick first where it is known (a window
        not walked yet may hide more between them)."""
        # Read without the lock that feeding holds: a snapshot, since a window may be added.
        keys = {self._origin(w) + k for w, walk in tuple(self._walks.items()) for k in walk.keys}
        return tuple(sorted(keys | ({self.pick} if self.pick is not None else set())))

    def _window_keys(self, window: int) -> tuple[int, ...]:
        walk = self._walks.get(window)
        return () if walk is None else tuple(self._origin(window) + k for k in walk.keys)

    def decided(self, n: int) -> bool:
        """Is frame n's keyframe (the last at or before it) known for good?"""
        window = self._window(n)
        if window == 0 and (self.pick is None or n < self.pick or self.rule.gaps is None):
            return self.pick is not None
        walk = self._walks.get(window)
        return walk is not None and n - self._origin(window) <= walk.decided()

    def segment_start(self, n: int) -> int:
        """Where frame n's recurrence starts (:meth:`decided` must hold): the shot's start
        before the pick, else the last keyframe at or before n."""
        if self._window(n) == 0 and n < self.pick:
            return self.start
        if self.rule.gaps is None:
            return self.pick
        return max(k for k in self._window_keys(self._window(n)) if k <= n)

    def known_after(self, k: int) -> bool:
        """Is the keyframe after keyframe ``k`` (or that there is none) known?"""
        if self.rule.gaps is None:
            return self.pick is not None
        window = self._window(k)
        walk = self._walks.get(window)
        return walk is not None and (walk.ended or walk.closed or any(key > k for key in self._window_keys(window)))

    def after(self, k: int) -> int | None:
        """The keyframe after keyframe ``k`` (:meth:`known_after` must hold), None if none:
        the next in its window, else the next window's first frame."""
        if self.rule.gaps is None:
            return None
        window = self._window(k)
        later = [key for key in self._window_keys(window) if key > k]
        if later:
            return later[0]
        return self._origin(window + 1) if self._walks[window].closed else None
