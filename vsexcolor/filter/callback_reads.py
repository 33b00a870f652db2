"""Frames a frame callback reads itself, read while it holds none of the filter's locks.

The filter's frame callbacks bring what they read along as dependencies
(:mod:`.frame_requests`), but a plan can go stale, and then a callback reads a frame itself,
synchronously. Such a read waits for VapourSynth's threads. Made under one of the filter's
locks (the engine's, a shot's keyframe walk's), it hung renders whose frames were all asked
for at once: VapourSynth's other threads took up callbacks that waited on that lock, and none
was left to make the frame.

So every callback runs through :func:`outside_locks`: a frame it lacks raises
:class:`FrameNeeded` up through the locks it holds, the frame is read with none held, and the
callback runs again with that frame at hand. A callback may therefore run more than once, and
each is written to be repeated: what it records only grows and is always true (a frame's
scene, a shot's keyframes, the engine's outputs), and what it hands over is the same again.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import vapoursynth as vs

T = TypeVar("T")

_local = threading.local()


class FrameNeeded(Exception):
    """Raised inside a callback for a frame it must read: frame ``n`` of ``clip``."""

    def __init__(self, clip: vs.VideoNode, n: int) -> None:
        super().__init__(f"frame {n} is read outside the callback's locks")
        self.clip, self.n = clip, n


def read(clip: vs.VideoNode, n: int) -> vs.VideoFrame:
    """Frame n of ``clip``, which no request brought along: inside a callback, the one read
    for it (else :class:`FrameNeeded` is raised to read it); elsewhere, read now."""
    at_hand: dict[tuple[int, int], vs.VideoFrame] | None = getattr(_local, "at_hand", None)
    if at_hand is None:
        return clip.get_frame(n)
    frame = at_hand.get((id(clip), n))
    if frame is None:
        raise FrameNeeded(clip, n)
    return frame


def outside_locks(call: Callable[[], T]) -> T:
    """``call()``, run again each time it needs a frame (:func:`read`) after reading that
    frame with no lock held; the frames read stay at hand until it returns."""
    outer = getattr(_local, "at_hand", None)
    at_hand: dict[tuple[int, int], vs.VideoFrame] = {}
    while True:
        _local.at_hand = at_hand
        try:
            return call()
        except FrameNeeded as needed:
            clip, n = needed.clip, needed.n
        finally:
            _local.at_hand = outer
        at_hand[id(clip), n] = clip.get_frame(n)
