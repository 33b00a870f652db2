"""Where each recurrence starts: scene cuts and reference changes."""
from __future__ import annotations

import bisect
import threading
from array import array
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .placement import Rule, ShotKeyframes
from .resolution import DEFAULT_PIXELS, Geometry

if TYPE_CHECKING:
    from .frame_requests import Seen

#: Default threshold of :func:`cut_score` above which a cut is declared.
DEFAULT_THRESHOLD = 0.3

_BINS = 32

# What Scenes knows of a frame: a start (>= 0: its segment starts there), or one of these.
_UNKNOWN = -1
_NOT_A_START = -2  # its segment is its previous frame's


#: ``Segment.reference`` of a shot coloured from its own automatic keyframe.
AUTOMATIC = -1


@dataclass(frozen=True)
class Segment:
    """A run of frames colorized by one recurrence.

    ``start``: its first frame; ``reference``: index of the reference in force (the position
    in the filter's sorted list of references, the start frame itself in propagation from
    the clip's own colour frames, or :data:`AUTOMATIC`); ``keyframe``: with
    :data:`AUTOMATIC`, the frame of its shot that is coloured to be the shot's keyframe;
    ``shot``: the first frame of its shot (a cut, or frame 0), ``start`` where None.
    """

    start: int
    reference: int
    keyframe: int | None = None
    shot: int | None = field(default=None, compare=False)  # derived from the others

    @property
    def source(self) -> tuple[int, int | None]:
        """What identifies the reference: segments with the same source share it."""
        return self.reference, self.keyframe


@dataclass(frozen=True)
class Automatic:
    """How :class:`Scenes` finds the automatic keyframes of shots with no reference of their
    own: by ``rule``, from the frames as ``read(n)`` gives them (:class:`Seen`: the cut
    detector's L) and cut between as ``cut(before, frame)`` says."""

    rule: Rule
    read: Callable[[int], Seen]
    cut: Callable[[Seen, Seen], bool]


def detection_geometry(width: int, height: int) -> Geometry:
    """The size the cut detector looks at a ``width`` x ``height`` frame in: about 384 x 216,
    whatever the networks' internal size, so that every user of the detector (the filter at
    any ``pixels``, ``vsexcolor shots``) finds the same cuts."""
    return Geometry.fit(width, height, DEFAULT_PIXELS, 1)


def cut_score(prev_L: torch.Tensor, L: torch.Tensor) -> float:
    """How unlike two frames are, 0..1, from their L (0..100, any shape).

    The mean of two cues: the L1 distance of 32-bin histograms (robust to motion) and the
    mean absolute difference of 8x8-cell averages (robust to a cut between frames of the
    same tonal distribution). A fade moves both slowly, so it stays below the threshold.
    """
    return cut_distance(cut_features(prev_L), cut_features(L))


def cut_features(L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`cut_score` compares of a frame's L (0..100, any shape): its normalised
    32-bin histogram and its 8x8-cell averages (96 numbers, to keep in place of a frame)."""
    h = torch.histc(L.float().flatten(), bins=_BINS, min=0.0, max=100.0)
    x = L.float().reshape(1, 1, *L.shape[-2:])
    return h / h.sum().clamp(min=1.0), torch.nn.functional.adaptive_avg_pool2d(x, (8, 8))


def cut_distance(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> float:
    """:func:`cut_score` of two frames' :func:`cut_features`."""
    hist_d = 0.5 * (a[0] - b[0]).abs().sum().item()
    cell_d = min(1.0, (a[1] - b[1]).abs().mean().item() / 30.0)
    return 0.5 * (hist_d + cell_d)


def is_cut(prev_L: torch.Tensor, L: torch.Tensor, upstream: int | None, threshold: float) -> bool:
    """Does a scene start at a frame? Its upstream ``_SceneChangePrev`` prop where set, else
    whether :func:`cut_score` of the detection L (:func:`detection_geometry`) of the frame
    before and of it exceeds ``threshold``."""
    if upstream is not None:
        return bool(upstream)
    return cut_score(prev_L, L) > threshold


class Scenes:
    """Maps each frame to its :class:`Segment`; a pure function of the frames, memoised.

    Args:
        num_frames: clip length.
        reference_starts: sorted first frames of the references (the first applies from 0).
            A segment starts where the reference in force changes, not at the first one's.
        is_cut: ``is_cut(n)`` for n >= 1: does a new scene start at n? None: no cuts.
        per_scene_reference: each scene is its own reference (propagation from the clip's
            colour frames); then ``Segment.reference`` is the scene start.
        keyframes: frames whose reference is that frame in colour: a segment starts there.
        automatic: how a shot (from a cut, or frame 0) where no reference starts finds its
            automatic keyframes (:class:`~vsexcolor.filter.placement.ShotKeyframes`): then
            it is coloured from them (``Segment.reference`` :data:`AUTOMATIC`), a segment
            for the frames before the first and one from each. None: such a shot takes the
            reference before it (the first one if none is before it).
        shot_of: the shot start of each reference start or keyframe that is not one itself
            (a keyframe inside its shot), for ``Segment.shot``.

    What is known of each frame only grows and is always true (its segment's start, or that
    it starts none), so threads may ask and record side by side without a lock; a shot's
    automatic keyframes are found under one (:meth:`feed`).
    """

    def __init__(self, num_frames: int, reference_starts: Sequence[int] = (0,),
                 is_cut: Callable[[int], bool] | None = None, per_scene_reference: bool = False,
                 keyframes: Collection[int] = (), automatic: Automatic | None = None,
                 shot_of: Mapping[int, int] | None = None) -> None:
        self.num_frames = num_frames
        self._shot_of = dict(shot_of or {})
        self._own = frozenset((*reference_starts, *keyframes))
        self.reference_starts = sorted(reference_starts) or [0]
        self.is_cut = is_cut
        self.per_scene_reference = per_scene_reference
        self.automatic = automatic
        self._shots: dict[int, ShotKeyframes] = {}
        self._placing = threading.Lock()
        self._restarts = sorted({0, *self.reference_starts[1:], *keyframes})
        # One int per frame: 8 bytes a frame, far below any frame's size.
        self._start = array("q", [_UNKNOWN]) * num_frames

    def _reference_index(self, n: int) -> int:
        return max(0, bisect.bisect_right(self.reference_starts, n) - 1)

    def segment(self, n: int) -> Segment:
        """Frame n's segment, testing for cuts back to its start as far as not known yet."""
        if not 0 <= n < self.num_frames:
            raise IndexError(f"frame {n} is outside 0..{self.num_frames - 1}")
        start = self._walk(n, -1, self.is_cut)
        if self.is_automatic(start):
            shot = self.feed(start, n, lambda shot: shot.decided(n))
            key = shot.segment_start(n)
            before_pick = shot.pick is not None and n < shot.pick  # coloured backward from it
            return Segment(key, AUTOMATIC, shot.pick if before_pick else key, start)
        return Segment(start, start if self.per_scene_reference else self._reference_index(n), None,
                       self._shot_of.get(start, start))

    def known_start(self, n: int) -> int | None:
        """The start of frame n's segment if what is known tells it, else None or a frame
        before it (a shot start whose keyframe is not picked yet); reads no frame."""
        start = self._walk(n, n, None)
        shot = self._shots.get(start) if start is not None and self.is_automatic(start) else None
        keys = [k for k in shot.keyframes if k <= n] if shot is not None else []
        return keys[-1] if keys else start

    def known_shot_start(self, n: int) -> int | None:
        """The first frame of frame n's shot where what is known tells it (a shot coloured
        from automatic keyframes; else its segment's), else None; reads no frame."""
        return self._walk(n, n, None)

    def shot(self, start: int) -> ShotKeyframes | None:
        """What is known of the automatic keyframes of the shot starting at ``start``, if
        anything; reads no frame."""
        return self._shots.get(start)

    def next_automatic(self, segment: Segment) -> int | None:
        """The automatic keyframe after the one ``segment`` starts from in its shot, or
        None; the frames before the shot's first keyframe go on to it."""
        if segment.start < segment.keyframe:
            return segment.keyframe
        shot = self.feed(segment.shot, segment.keyframe, lambda shot: shot.known_after(segment.keyframe))
        return shot.after(segment.keyframe)

    def feed(self, start: int, n: int, enough: Callable[[ShotKeyframes], bool],
             read: Callable[[int], Seen] | None = None) -> ShotKeyframes:
        """The automatic keyframes of the shot starting at ``start``, the frames of frame
        n's window (its opening first) fed in order until ``enough`` of them is known, each
        as ``read(i)`` gives it (default: :attr:`Automatic.read`). The frame after each fed
        is read too: does the shot go on?"""
        read = read or self.automatic.read
        with self._placing:
            shot = self._shots.get(start)
            if shot is None:
                shot = self._shots[start] = ShotKeyframes(start, self.automatic.rule)
            while not enough(shot):
                i = shot.next_frame(n)
                shot.feed(i, read(i).detect, self._shot_starts(i + 1, read))
        return shot

    def _shot_starts(self, n: int, read: Callable[[int], Seen]) -> bool:
        """Does another shot (or segment) start at frame n, or is n past the clip's end?"""
        if n >= self.num_frames or self.next_restart(n - 1) == n:
            return True
        if self.is_cut is None:
            return False
        known = self._start[n]
        if known == _UNKNOWN:
            cut = self.automatic.cut(read(n - 1), read(n))
            self._start[n] = n if cut else _NOT_A_START
            return cut
        return known == n

    def next_restart(self, n: int) -> int:
        """The first frame after n where a reference or keyframe restarts the recurrence
        whatever the frames (``num_frames`` if none)."""
        i = bisect.bisect_right(self._restarts, n)
        return self._restarts[i] if i < len(self._restarts) else self.num_frames

    def is_automatic(self, start: int) -> bool:
        """Is ``start`` a shot start with no reference of its own, coloured automatically?"""
        return self.automatic is not None and not self.per_scene_reference and start not in self._own

    def locate(self, n: int, lowest: int, is_cut: Callable[[int], bool]) -> bool:
        """Look for frame n's segment start no further back than frame ``lowest + 1``, with
        ``is_cut(k)`` for k in ``lowest + 1 .. n`` (not necessarily the constructor's: the
        caller may hold those frames); whether the start is known now. Where it is not,
        those frames are known to start no segment, so a search further back continues
        from ``lowest``."""
        return self._walk(n, lowest, is_cut) is not None

    def _walk(self, n: int, lowest: int, is_cut: Callable[[int], bool] | None) -> int | None:
        floor = self._restarts[bisect.bisect_right(self._restarts, n) - 1]
        if self.is_cut is None:
            return floor
        k, passed = n, []

        def start_nothing() -> None:
            for p in passed:
                self._start[p] = _NOT_A_START

        try:
            while True:
                known = self._start[k]
                if known >= 0:
                    start = known
                    break
                if known == _UNKNOWN:
                    if k <= floor:
                        start = k
                        break
                    if k <= lowest:
                        start_nothing()
                        return None
                    if is_cut(k):
                        start = k
                        break
                passed.append(k)
                k -= 1
        except BaseException:
            # Stopped by a frame to read outside the callback's locks (it runs again after):
            # the frames passed start nothing, and the search goes on from there, not from n.
            start_nothing()
            raise
        self._start[k] = start
        for p in passed:
            self._start[p] = start
        return start


def reference_shot_start(frame: int, before: int, is_cut: Callable[[int], bool] | None) -> int | None:
    """Where the shot holding a reference at ``frame`` starts: the nearest cut (``is_cut(k)``)
    at or before it, or frame 0; None if the reference before it, at ``before`` (-1: none),
    is in the same shot. Without cuts (``is_cut`` None) the clip is one shot."""
    if is_cut is None:
        return 0 if before < 0 else None
    for k in range(frame, before, -1):
        if k == 0 or is_cut(k):
            return k
    return None
