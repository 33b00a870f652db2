"""The requests that find a shot's automatic keyframes before any frame of it is coloured.

A shot's keyframes are found walking forward through each of its windows (:mod:`.placement`),
and the colours of frame n depend on the keyframe before it and, both ways, the one after
it: on the frames of n's window (``Rule.walk_through``). So every output request waits for
:attr:`KeyframeProbe.clip`, whose frame n is made once n's window has been walked.
It brings the frames the walk reads as VapourSynth dependencies, a few at a time, so that
no frame is read inside a callback (see :mod:`.frame_requests`):

* the walk of a shot is a clip of its own (:class:`ShotWalk`) whose frame m, once made,
  means m's window has been walked through frame m (or the shot ends before m);
* frame m brings the frames m - SEEK_STEP .. m + 1 and, where the walk has not reached
  m - SEEK_STEP yet and m's window started before it, first waits for its own frame
  m - SEEK_STEP: a walk into a window's middle becomes a chain of short steps from its
  first frame (the shot's first for the first window: its opening picks the first keyframe);
* rendering in order, each output's request walks one frame more and brings three.

Once the walk is far enough, a request brings the frames its keyframes are made from (of
the keyframe clip, or the luma clip for the keyframe model), the first time one is needed:
only those frames are asked of the keyframe clip.

A shot's walk reads its frames once each, at the cut detector's size, up to a window ahead
of the frame coloured: the scene clip is read twice over (once for the walk, once for the
render), which a source's decoder sees as two forward reads.
"""
from __future__ import annotations

import functools
import threading

import vapoursynth as vs

from .formats import shifted
from .frame_requests import SEEK_STEP, ScenesProbe, Seen, weakly
from .recurrence import LRU
from .wiring import Wiring

core = vs.core

#: Shots whose walk clips are kept for reuse (a request in flight keeps its own alive).
WALKS_KEPT = 16


class ShotWalk:
    """The clips of one shot's walk (see the module's doc); their callbacks reach the
    probe weakly and name the shot by its first frame, so nothing here forms a cycle."""

    def __init__(self, probe: KeyframeProbe, start: int) -> None:
        internal, source = probe.internal, probe.source

        def frames(first: int) -> list[vs.VideoNode]:
            return [source.shifted(k, "scene") for k in range(first, 2)]

        def feeding(first: int, skip: int) -> functools.partial:
            return functools.partial(weakly(probe.walk_frames), start=start, first=first, skip=skip)

        self.clip = core.std.FrameEval(internal, functools.partial(weakly(probe.plan_walk), start=start))
        self._through: dict[int, vs.VideoNode] = {}  # one a window asked for
        self.one = core.std.ModifyFrame(internal, [internal, *frames(-1)], feeding(-1, 1))
        self.step = core.std.ModifyFrame(internal, [internal, *frames(-SEEK_STEP)], feeding(-SEEK_STEP, 1))
        self.after = core.std.ModifyFrame(internal, [internal, shifted(self.clip, -SEEK_STEP), *frames(-SEEK_STEP)],
                                          feeding(-SEEK_STEP, 2))
        self._num_frames = internal.num_frames

    def through(self, m: int) -> vs.VideoNode:
        """A clip each of whose frames is made once the shot is walked through frame m."""
        node = self._through.get(m)
        if node is None:
            node = self._through[m] = self.clip[m] * self._num_frames
        return node


class KeyframeProbe:
    """A clip (:attr:`clip`) whose frame n is blank, but once it is made, the automatic
    keyframes of n's window are known: n's keyframe, and the one after it; and the frames
    they are made from are handed to the keyframe maker. Made at once for a frame of a shot
    with a reference of its own.

    Args:
        wiring: the filter's wiring: its segments (which find the keyframes), frames (the
            scene clip's are read), keyframe maker and which keyframes a frame needs.
        scenes_probe: what a frame whose shot start is not known yet waits for first.
    """

    def __init__(self, wiring: Wiring, scenes_probe: ScenesProbe) -> None:
        self.scenes, self.source, self.internal = wiring.scenes, wiring.source, wiring.internal
        self._maker, self._next_keyframe = wiring.keyframes, wiring.next_keyframe
        self.rule = self.scenes.automatic.rule
        internal = self.internal
        #: Frame n made: n's keyframes are known (what a planning pass waits for).
        self.walked = core.std.FrameEval(internal, weakly(self._plan))
        self.clip = core.std.FrameEval(internal, weakly(self._bring), prop_src=self.walked)
        self._after_probe = core.std.FrameEval(internal, weakly(self._plan_probed), prop_src=scenes_probe.clip)
        self._walks: LRU[int, ShotWalk] = LRU(WALKS_KEPT)
        self._lock = threading.Lock()

    def _plan(self, n: int, probed: bool = False) -> vs.VideoNode:
        start = self.scenes.known_shot_start(n)
        if start is None and not probed:
            return self._after_probe
        # After the probe the start is known; were it not, the engine would read what it lacks.
        if start is None or self.known(n):
            return self.internal
        return self._walk(start).through(self._through(start, n))

    def known(self, n: int) -> bool:
        """Are frame n's keyframe and the next known (:attr:`walked`'s frame n made)?
        Reads no frame."""
        start = self.scenes.known_shot_start(n)
        if start is None or not self.scenes.is_automatic(start):
            return start is not None
        return self._walked(start, self._through(start, n))

    def _through(self, start: int, n: int) -> int:
        """The frame through which shot ``start`` is walked for frame n."""
        return min(self.rule.walk_through(start, n), self.scenes.num_frames - 1)

    def _plan_probed(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        return self._plan(n, probed=True)

    def _bring(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        """Frame n's keyframes are known: the node that brings the frames of those not
        handed to the maker yet (one frame each), else a blank one."""
        start = self.scenes.known_shot_start(n)
        if start is None or not self.scenes.is_automatic(start):
            return self.internal
        segment = self.scenes.segment(n)
        after = self._next_keyframe(segment)
        keys = [k for k in (segment.keyframe, None if after is None else after.start)
                if k is not None and not self._maker.holds(k)]
        if not keys:
            return self.internal
        # Nodes made here, once a keyframe: frame n of each is keyframe k's frame.
        frames = [self._maker.clip[k] * self.scenes.num_frames for k in keys]
        return core.std.ModifyFrame(self.internal, [self.internal, *frames],
                                    functools.partial(weakly(self._hand_over), keys=tuple(keys)))

    def _hand_over(self, n: int, f: list[vs.VideoFrame], keys: tuple[int, ...]) -> vs.VideoFrame:
        for k, frame in zip(keys, f[1:]):
            self._maker.offer(k, frame)
        return f[0]

    def _walk(self, start: int) -> ShotWalk:
        with self._lock:
            walk = self._walks.get(start)
            if walk is None:
                walk = ShotWalk(self, start)
                self._walks.put(start, walk)
        return walk

    def _walked(self, start: int, m: int) -> bool:
        shot = self.scenes.shot(start)
        return shot is not None and shot.walked(m)

    def plan_walk(self, n: int, start: int) -> vs.VideoNode:
        """The node that walks shot ``start`` through frame n, chosen when it is requested."""
        if self._walked(start, n):
            return self.internal
        shot = self.scenes.shot(start)
        first = self.rule.window_first(start, n)
        fed = first if shot is None else shot.next_frame(n)
        walk = self._walk(start)
        if fed >= n:
            return walk.one
        if fed > n - SEEK_STEP or first > n - SEEK_STEP:
            return walk.step
        return walk.after

    def walk_frames(self, n: int, f: list[vs.VideoFrame], start: int, first: int, skip: int) -> vs.VideoFrame:
        """Walk shot ``start`` through frame n with the frames brought along: ``f[skip:]``
        are frames n + first .. n + 1."""
        last = self.scenes.num_frames - 1
        brought = {n + first + j: frame for j, frame in enumerate(f[skip:]) if 0 <= n + first + j <= last}

        @functools.cache
        def read(i: int) -> Seen:
            # A frame not brought along (a plan gone stale) is read: the same frame either way.
            frame = brought.get(i)
            return self.source.see(frame) if frame is not None else self.source.seen(i)

        self.scenes.feed(start, n, lambda shot: shot.walked(n), read)
        return f[0]
