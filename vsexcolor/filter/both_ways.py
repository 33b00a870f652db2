"""Colour carried both ways between the keyframes of a shot.

A frame between two restarts of its shot (keyframes, or references inside it) is coloured
twice: forward from the one before it, as always, and backward from the one after it; the
two are fused per pixel (:func:`~vsexcolor.filter.fusion.fuse`: by how near each keyframe is
and how sure each pass's match is). The frames of a shot before its first keyframe are
coloured backward from it alone.

The backward pass *is* the forward recurrence of the clip played backwards, from the next
keyframe's frame with its reference and initial state: the same engine, request planning
and batches, on mirrored frame numbers (``m = last - n``). So it keeps their promises: the
backward colours of frame n depend on the frames from n to that keyframe and on its
reference alone, whatever order frames are requested in. Output n depends on the frames
from the keyframe before it to the keyframe after it.

Memory: the backward engine keeps :data:`BACKWARD_HELD` outputs (ab and confidence, 12 bytes
an internal pixel: 1 MB each at the default ``pixels``, 255 MB for a full 256), so that rendering a segment
in order steps each frame once each way. A gap between keyframes longer than that is stepped
again from the engine's checkpoints (every ``checkpoint_every`` frames) where its frames fell
out: up to one more backward pass over them, no more memory.
"""
from __future__ import annotations

import threading
from array import array
from dataclasses import replace

import numpy as np
import vapoursynth as vs

from ..backends.base import Backend
from .formats import frame_ab, frame_confidence
from .frame_requests import RecurrenceRequests, Source, weakly
from .fusion import fuse
from .recurrence import EngineConfig, Recurrence
from .scenes import Segment
from .wiring import Wiring

core = vs.core

#: Backward outputs kept: a gap between keyframes up to this long is stepped once.
BACKWARD_HELD = 256


class BackwardSegments:
    """The backward passes' segments, in the reversed clip's frame numbers, as far as the
    fusion has announced them (:meth:`add`): what the engine asks of its scenes. Each starts
    at the next keyframe's frame and runs back to the first frame of the segment before it.

    What is known only grows and is always true, as for :class:`~vsexcolor.filter.scenes.Scenes`.
    """

    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames
        self._start = array("q", [-1]) * num_frames
        self._after: dict[int, Segment] = {}  # mirrored start -> the forward segment there
        self._lock = threading.Lock()

    def mirrored(self, n: int) -> int:
        return self.num_frames - 1 - n

    def add(self, first: int, after: Segment) -> None:
        """The frames ``first`` .. ``after.start`` are coloured backward from segment ``after``
        (no other backward pass covers them)."""
        start = self.mirrored(after.start)
        with self._lock:
            if start in self._after:
                return
            for m in range(start, self.mirrored(first) + 1):
                self._start[m] = start
            self._after[start] = after

    def forward_segment(self, start: int) -> Segment:
        """The forward segment (its frame numbers) a backward segment starting at ``start`` starts from."""
        return self._after[start]

    def segment(self, m: int) -> Segment:
        start = self._start[m]
        if start < 0:
            raise LookupError(f"frame {self.mirrored(m)} has no backward pass announced")
        after = self._after[start]
        return Segment(start, after.reference, after.keyframe, start)

    def known_start(self, m: int) -> int | None:
        start = self._start[m]
        return None if start < 0 else start

    def locate(self, m: int, lowest: int, is_cut: object) -> bool:
        return self.known_start(m) is not None


class BothWays:
    """The fused clip (:attr:`clip`): frame n holds output n's ab (U and V planes) and the
    forward frame's props. Where n's segment has no next keyframe in its shot, that is the
    forward output itself.

    Args:
        wiring: the filter's wiring (its segments, references and frames).
        forward: the forward recurrence, writing its confidence.
        backend: the backend, shared with the forward engine.
        config: the forward engine's sizes; the backward engine keeps :data:`BACKWARD_HELD`
            outputs besides.
    """

    def __init__(self, wiring: Wiring, forward: RecurrenceRequests, backend: Backend, config: EngineConfig) -> None:
        self.wiring, self.scenes = wiring, wiring.scenes
        self.segments = segments = BackwardSegments(wiring.scenes.num_frames)
        source = Source(wiring.source.luma.reversed(), wiring.geometry, wiring.source.sizes)
        engine = Recurrence(backend, segments, source.internal_L,
                            lambda segment: wiring.references(segments.forward_segment(segment.start)),
                            replace(config, cache_frames=max(config.cache_frames, BACKWARD_HELD)))
        # The backward requests' callbacks reach it weakly, and so do this object's: the
        # render's last callback owns this object, which owns the requests.
        self._backward = RecurrenceRequests(engine, source, wiring.internal, wiring.is_cut, lambda segment: {},
                                            confidence=True)
        self._forward, self.source = forward, forward.source
        backward = core.std.Reverse(self._backward.clip)
        self._fusing = core.std.ModifyFrame(wiring.internal, [forward.clip, backward], weakly(self._fuse))
        self.clip = core.std.FrameEval(wiring.internal, weakly(self._plan), prop_src=forward.clip)

    def _plan(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        # The forward output is made: its segment is known.
        segment = self.scenes.segment(n)
        after = self.wiring.next_keyframe(segment)
        counts = self.wiring.forward_counts(segment)
        if after is None or (counts and n == segment.start):  # at its keyframe, the forward pass alone
            return self._forward.clip
        # A backward pass covers the frames after the segment's keyframe up to its own, so
        # that the passes of consecutive segments of a shot never share a frame.
        self.segments.add(segment.start + 1 if counts else segment.start, after)
        return self._fusing

    def _fuse(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        forward, backward = f
        segment = self.scenes.segment(n)
        after = self.wiring.next_keyframe(segment)
        ab = frame_ab(backward)
        if self.wiring.forward_counts(segment):
            ab = fuse(frame_ab(forward), ab, n - segment.start, after.start - n,
                      frame_confidence(forward), frame_confidence(backward))
        out = forward.copy()
        for p, plane in enumerate(ab[0].numpy(), start=1):
            np.copyto(np.asarray(out[p]), plane)
        return out
