"""What the commands learn of the ``colorize`` calls a build makes, without a word from the
script: each node's :class:`Fingerprint` (:func:`recording`), a planning build
(:func:`recording` with ``planning``) and the calls themselves (:func:`calls`).

These are context variables, so that the filter's signature stays a script's: a render, a
farm's planning and ``vsexcolor shots`` all build the very script a user runs in vspipe.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import vapoursynth as vs

from .options import KEYFRAME_GAPS


@dataclass(frozen=True)
class Fingerprint:
    """What a ``colorize`` node's bytes depend on beyond its arguments and its input: a render
    resumed, or finished on other machines, must match it.

    ``backend``: the backend that runs; ``weights_sha256``: its checkpoint's
    (:func:`~vsexcolor.weights.devc.fingerprint`), None for ``propagate``; ``device``: ``cpu``
    or ``cuda``; ``precision``: ``float16`` or ``float32``; ``torch``: its version;
    ``cpu_threads``: torch's threads where they change the networks' results (``devc`` on the
    CPU), else None; ``keyframe_sha256``: the keyframe model's checkpoint where shots without
    a reference are coloured with it, else None.
    """

    backend: str
    weights_sha256: str | None
    device: str
    precision: str
    torch: str
    cpu_threads: int | None
    keyframe_sha256: str | None = None


@dataclass(frozen=True)
class Call:
    """A ``colorize`` call as :func:`calls` records it: the clip it colours, and how it finds
    that clip's shots and the frame of each it colours."""

    clip: vs.VideoNode
    scene_clip: vs.VideoNode | None
    scene_threshold: float
    scenes: bool = True
    keyframe_pick: str = "sharpest"
    keyframe_gaps: tuple[float, float] | None = KEYFRAME_GAPS


_recorded: ContextVar[list[Fingerprint] | None] = ContextVar("vsexcolor_recorded", default=None)
_planning: ContextVar[bool] = ContextVar("vsexcolor_planning", default=False)
_calls: ContextVar[list[Call] | None] = ContextVar("vsexcolor_calls", default=None)


@contextlib.contextmanager
def recording(planning: bool = False) -> Iterator[list[Fingerprint]]:
    """Collect the :class:`Fingerprint` of every ``colorize`` node made inside (in this thread).

    With ``planning``, ``colorize`` returns instead a clip of the same format, size and
    length whose frames are blank but carry the output's props (``VsexcolorSceneStart``...),
    made without loading any weights or running any network: what a farm needs to split a
    render into its scenes. Finding a frame's scene start costs the frames back to it.
    """
    found: list[Fingerprint] = []
    tokens = _recorded.set(found), _planning.set(planning)
    try:
        yield found
    finally:
        _planning.reset(tokens[1])
        _recorded.reset(tokens[0])


@contextlib.contextmanager
def calls() -> Iterator[list[Call]]:
    """Collect every ``colorize`` call made inside (in this thread), as a :class:`Call`, what
    ``vsexcolor shots`` needs of a script's. Each returns at once a blank clip of its output's
    format and length, having read nothing else (no reference, no weights): a script's shots
    are found before its references exist."""
    found: list[Call] = []
    token = _calls.set(found)
    try:
        yield found
    finally:
        _calls.reset(token)


def planning() -> bool:
    """Is the ``colorize`` being built a planning one (see :func:`recording`)?"""
    return _planning.get()


def record(fingerprint: Fingerprint) -> None:
    """Note a node's fingerprint where :func:`recording` collects them."""
    if (found := _recorded.get()) is not None:
        found.append(fingerprint)


def record_call(call: Call) -> bool:
    """Note a call where :func:`calls` collects them; whether it was noted (then the call
    returns a blank clip at once)."""
    if (found := _calls.get()) is None:
        return False
    found.append(call)
    return True
