"""The recurrence as VapourSynth clips: which frames each output request brings along.

The filter never reads a frame from VapourSynth inside a frame callback (VapourSynth R81 has
left such reads stalled for good when its frame cache was small). Each output request is
planned when it is made (:meth:`RecurrenceRequests._plan`), so that it brings along, as
dependencies, the frames and the earlier output the engine will read for it:

* a request that follows one for the frame before brings the frames around it;
* one with an output held up to SEEK_STEP frames before it, or its scene start that close,
  also brings the frames back to there (it catches up);
* one whose scene start is not known yet first waits for a *probe*: the frames back to
  SEEK_STEP before it are tested for a cut, and where none is, the probe SEEK_STEP frames
  earlier, and so on, so that finding a scene's start reads the frames back to it, never
  the frames before it;
* any other first waits for the output SEEK_STEP frames earlier, a request of its own, so
  that a seek far into a scene becomes a chain of short steps from the scene's start.

The plan is a guess made without waiting for the engine; where it goes stale, the engine
reads the missing frame synchronously, outside its locks (:mod:`.callback_reads`), and the
bytes are the same either way.

VapourSynth holds a node's callbacks from C, where Python's cycle collector cannot see them,
and these clips depend on one another in a cycle (an output waits for an earlier one). So
every callback here reaches its object weakly (:func:`weakly`), and the filter's last
callback, which no node here reaches, owns it: freeing the output frees all of it.
"""
from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import vapoursynth as vs

from .callback_reads import outside_locks, read
from .formats import frame_ab, shifted
from .luma import Luma
from ..memory import release_freed_memory
from .recurrence import LRU, Recurrence
from .resolution import Geometry
from .scenes import Scenes, detection_geometry

core = vs.core

#: Frames one request catches up on at most, and a probe looks back for a cut at a time.
SEEK_STEP = 8

#: Recurrence outputs between calls of :func:`release_freed_memory`: without them a render's
#: memory grew by about 1 MiB per frame (glibc's heap fragments), with them it stays flat.
RELEASE_EVERY = 32


def weakly(method: Callable[..., object]) -> Callable[..., object]:
    """``method`` as a frame callback that does not keep its object alive (see the module's
    last paragraph) and reads what it lacks outside its locks (:func:`outside_locks`)."""
    ref = weakref.WeakMethod(method)

    def call(*args, **kwargs):
        bound = ref()
        if bound is None:
            raise vs.Error("colorize: a frame was requested from a freed node")
        return outside_locks(lambda: bound(*args, **kwargs))

    return call


@dataclass(frozen=True)
class Window:
    """How many frames around an output the filter handles; every cache size derives here.

    ``ahead``: frames past output n whose L the engine reads (the rest of n's correspondence
    batch and the whole next one). ``back``: frames before n that a catching-up request
    steps (SEEK_STEP), and the rest of the first of their batches.
    """

    ahead: int
    back: int

    @property
    def converted(self) -> int:
        """Internal-size L kept: one catching-up output's frames, its frame before (the cut
        test), itself and the frame after it."""
        return self.ahead + self.back + 3

    @property
    def full_size(self) -> int:
        """Full-size L kept: the engine reads up to ``ahead`` frames before the finish needs
        the same L at full size."""
        return self.ahead + 3

    @property
    def colour(self) -> int:
        """Colour frames kept (propagating from the clip's own colour): a catching-up
        output's, back to its first."""
        return self.back + 2

    @property
    def pending(self) -> int:
        """Planned requests remembered: those of a few catching-up outputs in flight; older
        ones were served from VapourSynth's cache and never computed."""
        return 4 * self.back

    @property
    def states(self) -> int:
        """Earlier outputs handed over for requests still to compute: one per request
        within a catching-up step."""
        return self.back


#: The clips a :class:`Source` reads: the luma clip (the networks' L), the scene clip (the
#: cut detector's; the luma clip itself unless colorize was given another) and the colour clip.
ClipName = Literal["luma", "scene", "colour"]


class Seen(NamedTuple):
    """A frame as the cut detector and the keyframe pick see it."""

    detect: torch.Tensor  # [1, 1, h, w] L at the detector's size
    upstream_cut: int | None  # its _SceneChangePrev prop, if any


class Source:
    """Frames of the luma clip (:class:`~vsexcolor.luma.Luma`) as the engine needs them: L at
    full and internal size, each converted once; the frames of the *scene clip* as the cut
    detector sees them (:class:`Seen`); and, propagating from the clip's own colour, the
    colour frames that start scenes.

    The scene clip is the luma clip unless ``scene_luma`` names another (``colorize``'s
    ``scene_clip``): then cuts and picks are found on its frames alone, and a planning clip
    (:meth:`window` with ``planning``) reads nothing of the luma clip, so that costly filters
    between the two run only when frames are rendered.

    An output frame's request brings, as VapourSynth dependencies, the frames the engine
    reads for it (see :meth:`window`); they are handed over with :meth:`offer`. A frame the
    engine reads that none brought (where a request's plan went stale) is read with a
    synchronous ``get_frame`` from inside the frame callback, outside its locks
    (:func:`~vsexcolor.filter.callback_reads.read`).
    """

    def __init__(self, luma: Luma, geometry: Geometry, window: Window,
                 colour_clip: vs.VideoNode | None = None, scene_luma: Luma | None = None) -> None:
        self.luma, self.clip, self.geometry, self.sizes = luma, luma.clip, geometry, window
        self.colour_clip = colour_clip
        self.scene_luma = scene_luma or luma
        self._separate = scene_luma is not None
        self._detect = detection_geometry(geometry.width, geometry.height)
        self._internal: LRU[int, torch.Tensor] = LRU(window.converted)
        self._seen: LRU[int, Seen] = LRU(window.converted)
        self._full: LRU[int, torch.Tensor] = LRU(window.full_size)
        self._offered: LRU[int, vs.VideoFrame] = LRU(window.converted)
        self._stores = {"luma": self._offered, "colour": LRU(window.colour),
                        "scene": LRU(window.converted) if self._separate else self._offered}
        self._clips = {"luma": self.clip, "colour": colour_clip, "scene": self.scene_luma.clip}
        self._shifts: dict[tuple[ClipName, int], vs.VideoNode] = {}
        # The engine reads under its own lock; output frames hand over frames and ask for
        # their L outside it.
        self._lock = threading.Lock()

    def window(self, catch_up: bool, planning: bool = False) -> list[vs.VideoNode]:
        """Clips whose frame n are what output frame n brings along: the luma clip's frames
        n, n - 1 (for the cut detector) and n + 1 ... n + ahead (for the batches ahead), the
        scene clip's same frames where it is another clip, and the colour clip's frame n (a
        scene may start there); with ``catch_up``, also the frames n - 2 ... n - back (the
        frames stepped after a seek, and the rest of their first batch). ``planning``: only
        the frames the cut detector and the keyframe pick read."""
        return [self.shifted(k, name) for name, k in self._feeds(catch_up, planning)]

    def _feeds(self, catch_up: bool, planning: bool) -> list[tuple[ClipName, int]]:
        """The clip and offset of each frame an output frame brings along, in order."""
        around = (0, -1, *range(1, self.sizes.ahead + 1))
        back = tuple(range(-2, -self.sizes.back - 1, -1)) if catch_up else ()
        frames = (*around, *back)
        if planning:
            return [("scene", k) for k in frames]
        colour = (0, -1, *back) if catch_up else (0,)
        return [("luma", k) for k in frames] + ([("scene", k) for k in frames] if self._separate else []) + \
            ([("colour", k) for k in colour] if self.colour_clip is not None else [])

    def shifted(self, offset: int, name: ClipName = "luma") -> vs.VideoNode:
        """The luma, scene or colour clip (``name``) shifted by ``offset`` frames
        (:func:`~vsexcolor.formats.shifted`)."""
        key = (name, offset)
        if key not in self._shifts:
            self._shifts[key] = shifted(self._clips[name], offset)
            # The engine keeps what it reads (its LRUs): cached here too, a film's frames were
            # held twice, the more so the more shots it has.
            core.std.SetVideoCache(self._shifts[key], 0)
        return self._shifts[key]

    def offer(self, n: int, frames: list[vs.VideoFrame], catch_up: bool, planning: bool = False) -> None:
        """Hand over what output frame n brought: the frames of :meth:`window`, in order."""
        with self._lock:
            for (name, k), frame in zip(self._feeds(catch_up, planning), frames):
                if 0 <= n + k < self.clip.num_frames:
                    self._stores[name].put(n + k, frame)

    def _frame(self, n: int, name: ClipName = "luma") -> vs.VideoFrame:
        """Frame n of the luma, scene or colour clip: as offered, else read."""
        with self._lock:
            frame = self._stores[name].get(n)
        return frame if frame is not None else self._read(self._clips[name], n)

    def _read(self, clip: vs.VideoNode, n: int) -> vs.VideoFrame:
        """A frame no output frame brought along: read synchronously."""
        return read(clip, n)

    def colour(self, n: int) -> vs.VideoFrame:
        """Frame n of the colour clip."""
        return self._frame(n, "colour")

    def full_L(self, n: int, frame: vs.VideoFrame) -> torch.Tensor:
        """[1, 1, H, W] L of frame ``n``, whose luma-clip frame is ``frame``."""
        with self._lock:
            L = self._full.get(n)
        if L is None:
            L = self.luma.L(frame)
            with self._lock:
                self._full.put(n, L)
        return L

    def frame_L(self, n: int) -> torch.Tensor:
        """[1, 1, H, W] L of frame n at full size: from what was offered, else read."""
        return self.full_L(n, self._frame(n))

    def internal_L(self, n: int) -> torch.Tensor:
        """[1, 1, padded_h, padded_w] L of frame n at the networks' size."""
        hit = self._internal.get(n)
        if hit is None:
            hit = self.geometry.to_internal(self.frame_L(n))
            self._internal.put(n, hit)
        return hit

    def seen(self, n: int) -> Seen:
        """Frame n of the scene clip as the detector sees it: from what was offered, else read."""
        hit = self._seen.get(n)
        if hit is None:
            if self._separate:
                hit = self.see(self._frame(n, "scene"))
            else:
                hit = self._seen_as(self._frame(n), self.frame_L(n), self.internal_L(n))
            self._seen.put(n, hit)
        return hit

    def see(self, frame: vs.VideoFrame) -> Seen:
        """A frame of the scene clip as the detector sees it."""
        return self._seen_as(frame, self.scene_luma.L(frame))

    def _seen_as(self, frame: vs.VideoFrame, full: torch.Tensor, internal: torch.Tensor | None = None) -> Seen:
        g, d = self.geometry, self._detect
        # The same interpolation: the detector's L is the networks' without the padding
        # wherever the two sizes agree (at the default ``pixels``).
        shared = internal is not None and (g.w, g.h) == (d.w, d.h)
        detect = internal[..., :g.h, :g.w] if shared else d.to_internal(full)
        cut = frame.props.get("_SceneChangePrev")
        return Seen(detect, None if cut is None else int(cut))


class ScenesProbe:
    """A clip (:attr:`clip`) whose frame n is blank, but once it is made, frame n's scene
    start is known to ``scenes``: it tests the SEEK_STEP frames back from n for a cut and,
    where none is, waits for its own frame SEEK_STEP earlier. What a request whose scene
    start is unknown waits for, and all a planning build runs.

    Args:
        scenes: what is known of each frame's segment, which the probe adds to.
        source: the frames (the scene clip's are tested).
        is_cut: as for :class:`RecurrenceRequests`.
        internal: any clip of the clip's length (its frames are returned).
    """

    def __init__(self, scenes: Scenes, source: Source, is_cut: Callable[[Seen, Seen], bool],
                 internal: vs.VideoNode) -> None:
        self.scenes, self.source, self._is_cut, self._internal = scenes, source, is_cut, internal
        self.clip = core.std.FrameEval(internal, weakly(self._probe),
                                       prop_src=[source.shifted(-k, "scene") for k in range(SEEK_STEP + 1)])
        self._further = shifted(self.clip, -SEEK_STEP)

    def _probe(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoNode:
        """Test frames n - SEEK_STEP + 1 .. n for a cut (``f[k]`` is frame n - k); where
        none is, go on with the probe SEEK_STEP frames earlier."""
        @functools.cache
        def seen(k: int) -> Seen:
            return self.source.see(f[n - k])

        found = self.scenes.locate(n, n - SEEK_STEP, lambda k: self._is_cut(seen(k - 1), seen(k)))
        return self._internal if found else self._further


class RecurrenceRequests:
    """The recurrence as a clip (:attr:`clip`): its frame n holds output n's ab at the
    internal size in the U and V planes (with ``confidence``, the confidence of its
    correspondence in the Y plane, which the fusion of two passes weighs by), and every
    request for it is planned when it is made (see the module's doc).

    Args:
        engine: the recurrence engine.
        source: the frames it reads.
        internal: a YUV444PS clip of the internal size and the clip's length.
        backend_name: written into the ``VsexcolorBackend`` prop.
        is_cut: ``is_cut(before, frame)``: does a scene start at ``frame``, given the
            frame before it (both :class:`Seen`)? The engine's own test, on frames at hand.
        props: ``props(segment)`` -> the frame props of an output of that segment.
        confidence: also write each output's correspondence confidence.
        probe: what a request whose scene start is not known waits for first (default: a
            :class:`ScenesProbe` of its own).
        keyframes: what every request waits for where shots find automatic keyframes (a
            :class:`~vsexcolor.filter.keyframe_requests.KeyframeProbe`, held here).
    """

    def __init__(self, engine: Recurrence, source: Source, internal: vs.VideoNode,
                 is_cut: Callable[[Seen, Seen], bool], props: Callable[[object], dict],
                 confidence: bool = False, probe: ScenesProbe | None = None, keyframes: Any = None) -> None:
        self.engine, self.source, self._is_cut, self.props = engine, source, is_cut, props
        self._confidence = confidence
        weakref.finalize(self, engine.close)
        sizes = source.sizes
        # Requests planned and not computed yet (frame -> its node), and the states that
        # requests for output n bring along for it (frame -> (k, output k's ab)).
        self._pending: LRU[int, vs.VideoNode] = LRU(sizes.pending)
        self._states: LRU[int, tuple[int, torch.Tensor]] = LRU(sizes.states)
        self._planning = threading.Lock()
        self._computed = 0
        # VapourSynth runs the callbacks of the two recurrence nodes side by side; an
        # output's frames must stay offered until the engine has read them.
        self._recurring = threading.Lock()
        self._keyframes = keyframes
        waits = [] if keyframes is None else [keyframes.clip]
        self._in_order, self._catching_up = (
            core.std.ModifyFrame(internal, [internal, *waits, *source.window(catch_up)],
                                 functools.partial(weakly(self._recur), catch_up=catch_up, skip=1 + len(waits)))
            for catch_up in (False, True))
        self.clip = core.std.FrameEval(internal, weakly(self._plan))
        self._after_previous, self._after_step_back = (self._after(internal, d) for d in (1, SEEK_STEP))
        self._probe = probe or ScenesProbe(engine.scenes, source, is_cut, internal)
        self._after_probe = core.std.FrameEval(internal, weakly(self._plan_probed), prop_src=self._probe.clip)
        self._after_walk = None if keyframes is None else \
            core.std.FrameEval(internal, weakly(self._plan_walked), prop_src=keyframes.walked)

    def _plan(self, n: int, probed: bool = False, walked: bool = False) -> vs.VideoNode:
        """The node that computes output n, chosen when it is requested."""
        engine = self.engine
        held = engine.held(n, SEEK_STEP)
        with self._planning:
            before = self._pending.get(n - 1)
            if held is not None and held[0] == n:
                node = self._in_order
            elif before is self._in_order or before is self._catching_up:
                # Output n - 1 brings the frames before it along and waits for no other
                # output, so VapourSynth computes it first; n needs only the frames around it.
                node = self._in_order
            elif before is not None:
                node = self._after_previous  # which waits for another output first
            elif held is not None or engine.start_within(n, SEEK_STEP):
                node = self._catching_up
            elif not probed and engine.scenes.known_start(n) is None:
                node = self._after_probe
            elif not walked and self._keyframes is not None and not self._keyframes.known(n):
                # n's segment may start at a keyframe of its window not found yet: stepping
                # back before the walk would colour the shot from its first frame.
                node = self._after_walk
            else:
                node = self._after_step_back
            if held is not None:
                self._states.put(n, held)  # the engine may drop it before n is computed
            self._pending.put(n, node)
        return node

    def _plan_probed(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        return self._plan(n, probed=True)

    def _plan_walked(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        return self._plan(n, probed=True, walked=True)

    def _after(self, internal: vs.VideoNode, distance: int) -> vs.VideoNode:
        """Output n computed, catching up, once output n - distance is done (a request of
        its own), from that output."""
        return core.std.FrameEval(internal, functools.partial(weakly(self._hand_over), distance=distance),
                                  prop_src=shifted(self.clip, -distance))

    def _hand_over(self, n: int, f: vs.VideoFrame, distance: int) -> vs.VideoNode:
        with self._planning:
            self._states.put(n, (n - distance, frame_ab(f)))
        return self._catching_up

    def _recur(self, n: int, f: list[vs.VideoFrame], catch_up: bool, skip: int) -> vs.VideoFrame:
        # Kept until n is computed: the callback runs again after a frame read outside its locks.
        with self._planning:
            state = self._states.peek(n)
        with self._recurring:
            self.source.offer(n, f[skip:], catch_up)
            ab, segment = self.engine.ab(n, state)
            confidence = self.engine.confidence(n) if self._confidence else None
        with self._planning:
            self._states.pop(n)
            self._pending.pop(n)
            self._computed += 1
            release = self._computed % RELEASE_EVERY == 0
        if release:
            release_freed_memory()
        out = f[0].copy()
        for p, plane in enumerate(ab[0].cpu().numpy(), start=1):
            np.copyto(np.asarray(out[p]), plane)
        if confidence is not None:
            np.copyto(np.asarray(out[0]), confidence[0, 0].cpu().numpy())
        for key, value in self.props(segment).items():
            out.props[key] = value
        return out
