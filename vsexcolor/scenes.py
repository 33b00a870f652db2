"""Where each recurrence starts: scene cuts and reference changes."""
from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: Default threshold of :func:`cut_score` above which a cut is declared.
DEFAULT_THRESHOLD = 0.3

_BINS = 32


@dataclass(frozen=True)
class Segment:
    """A run of frames colorized by one recurrence.

    ``start``: its first frame; ``reference``: index of the reference in force (the position
    in the filter's sorted list of references, or the start frame itself in propagation
    from the clip's own colour frames).
    """

    start: int
    reference: int


def cut_score(prev_L: torch.Tensor, L: torch.Tensor) -> float:
    """How unlike two frames are, 0..1, from their L (0..100, any shape).

    The mean of two cues: the L1 distance of 32-bin histograms (robust to motion) and the
    mean absolute difference of 8x8-cell averages (robust to a cut between frames of the
    same tonal distribution). A fade moves both slowly, so it stays below the threshold.
    """
    def hist(x: torch.Tensor) -> torch.Tensor:
        h = torch.histc(x.float().flatten(), bins=_BINS, min=0.0, max=100.0)
        return h / h.sum().clamp(min=1.0)

    def cells(x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(1, 1, *x.shape[-2:])
        return torch.nn.functional.adaptive_avg_pool2d(x, (8, 8))

    hist_d = 0.5 * (hist(prev_L) - hist(L)).abs().sum().item()
    cell_d = min(1.0, (cells(prev_L) - cells(L)).abs().mean().item() / 30.0)
    return 0.5 * (hist_d + cell_d)


class Scenes:
    """Maps each frame to its :class:`Segment`; a pure function of the frames, memoised.

    Args:
        num_frames: clip length.
        reference_starts: sorted first frames of the references (the first applies from 0).
        is_cut: ``is_cut(n)`` for n >= 1: does a new scene start at n? None: no cuts.
        per_scene_reference: each scene is its own reference (propagation from the clip's
            colour frames); then ``Segment.reference`` is the scene start.
    """

    def __init__(self, num_frames: int, reference_starts: Sequence[int] = (0,),
                 is_cut: Callable[[int], bool] | None = None, per_scene_reference: bool = False) -> None:
        self.num_frames = num_frames
        self.reference_starts = sorted(reference_starts) or [0]
        self.is_cut = is_cut
        self.per_scene_reference = per_scene_reference
        # One int per frame (-1: not known yet): 4 bytes a frame, far below any frame's size.
        self._start = array("l", [-1]) * num_frames

    def _reference_index(self, n: int) -> int:
        return max(0, bisect.bisect_right(self.reference_starts, n) - 1)

    def known_start(self, n: int) -> int | None:
        """The start of frame n's segment if :meth:`segment` has found it, else None; reads
        no frame."""
        start = self._start[n]
        return start if start >= 0 else None

    def segment(self, n: int) -> Segment:
        if not 0 <= n < self.num_frames:
            raise IndexError(f"frame {n} is outside 0..{self.num_frames - 1}")
        ref = self._reference_index(n)
        floor = self.reference_starts[ref] if n >= self.reference_starts[ref] else 0
        # Walk back to the nearest known start, a cut or the reference's first frame.
        k, pending = n, []
        while self._start[k] < 0:
            if k <= floor or (self.is_cut is not None and self.is_cut(k)):
                self._start[k] = k
                break
            pending.append(k)
            k -= 1
        start = self._start[k]
        for p in pending:
            self._start[p] = start
        return Segment(start, start if self.per_scene_reference else ref)
