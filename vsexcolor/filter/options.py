"""``colorize``'s settings, checked once, up front, into one object (:class:`Options`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
import vapoursynth as vs

from ..devices import parse_device
from .formats import fail, output_format
from .keyframe_rule import MAX_GAP_S, MIN_GAP_S, gap_frames
from .placement import Rule
from .postprocess import Finish
from .recurrence import EngineConfig
from .resolution import DEFAULT_PIXELS, MAX_PIXELS

BackendName = Literal["auto", "devc", "propagate"]
Preset = Literal["default", "official"]
KeyframePick = Literal["sharpest", "first"]
Direction = Literal["both", "forward"]

#: Frames of a shot's opening that the sharpest pick looks at: its first second, and no
#: more than this many (each is held in memory while a shot starts).
MAX_PICK_SPAN = 48
#: ``colorize``'s default shortest and longest seconds between a shot's automatic keyframes.
KEYFRAME_GAPS = (MIN_GAP_S, MAX_GAP_S)
#: The longest gap between automatic keyframes one may ask for, in seconds.
MAX_KEYFRAME_GAP_S = 3600
#: The frame rate assumed of a clip that has none (variable frame rate), to count seconds in.
FALLBACK_FPS = 24.0

PRESETS: dict[str, tuple[Finish, int]] = {
    # Smoothing keeps colour inside edges; the authors' 1.25 saturation boost tends to
    # push skin and sky to cartoon tones on real footage, so the default leaves it out.
    "default": (Finish(saturation=1.0, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
    "official": (Finish(saturation=1.25, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
}


@dataclass(frozen=True)
class Options:
    """What ``colorize`` was asked for, every value checked (see :func:`colorize` for units
    and ranges). ``finish`` is the preset's with ``saturation`` applied; ``smooth`` stays
    apart, since whether a backend's output is smoothed by default depends on the backend."""

    backend: BackendName
    weights: object
    keyframe_model: object
    keyframe_pick: KeyframePick
    keyframe_gaps: tuple[float, float] | None
    propagate: bool
    direction: Direction
    finish: Finish
    smooth: float | None
    pixels: int
    scenes: bool
    scene_threshold: float
    device: torch.device
    fp16: bool
    out_format: vs.VideoFormat
    engine: EngineConfig

    def keyframe_rule(self, clip: vs.VideoNode) -> Rule:
        """How ``clip``'s shots find their automatic keyframes, in frames: the pick among the
        first second's frames (``"sharpest"``) or the first, and the gaps after it."""
        fps = float(clip.fps) if clip.fps else FALLBACK_FPS
        span = 1 if self.keyframe_pick == "first" else min(MAX_PICK_SPAN, max(1, round(fps)))
        return Rule(span, None if self.keyframe_gaps is None else gap_frames(*self.keyframe_gaps, fps))


def _choice(param: str, value: object, kind: object) -> None:
    allowed = [repr(a) for a in get_args(kind)]
    if value not in get_args(kind):
        raise fail(param, f"{', '.join(allowed[:-1])} or {allowed[-1]}", value)


def _int_in(param: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise fail(param, f"an int in {low}..{high}", value)
    return value


def _number_in(param: str, value: object, low: float, high: float, what: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise fail(param, f"in {low:g}..{high:g}{what}", value)
    return float(value)


def check_options(clip: vs.VideoNode, *, backend: str, weights: object, keyframe_model: object,
                  keyframe_pick: str, keyframe_gaps: object, propagate: bool, direction: str, preset: str, saturation: float | None,
                  smooth: float | None, pixels: int | None, scenes: bool, scene_threshold: float, device: str,
                  fp16: bool | None, out_format: object, batch: int, cache_frames: int, checkpoint_every: int,
                  checkpoints: int, planning: bool) -> Options:
    """``colorize``'s keyword arguments as :class:`Options`, or the ``vs.Error`` that names
    the first wrong one. ``planning``: the device may be one of another machine (a farm's
    driver plans for its nodes)."""
    _choice("backend", backend, BackendName)
    _choice("preset", preset, Preset)
    _choice("keyframe_pick", keyframe_pick, KeyframePick)
    _choice("direction", direction, Direction)
    keyframe_gaps = _gaps(keyframe_gaps)
    finish, default_pixels = PRESETS[preset]
    if saturation is not None:
        finish = replace(finish, saturation=_number_in("saturation", saturation, 0.0, 4.0))
    if smooth is not None:
        smooth = _number_in("smooth", smooth, 0.0, 10000.0, " (0: off)")
    pixels = _int_in("pixels", default_pixels if pixels is None else pixels, 1024, MAX_PIXELS)
    scene_threshold = _number_in("scene_threshold", scene_threshold, 0.0, 1.0)
    engine = EngineConfig(batch=_int_in("batch", batch, 1, 64),
                          cache_frames=_int_in("cache_frames", cache_frames, 1, 1 << 20),
                          checkpoint_every=_int_in("checkpoint_every", checkpoint_every, 1, 1 << 20),
                          checkpoints=_int_in("checkpoints", checkpoints, 1, 1 << 20))
    out = output_format(clip, out_format)
    try:
        dev = parse_device(device, here=not planning)
    except ValueError as e:
        raise vs.Error(f"colorize: device {e}") from None
    return Options(backend=backend, weights=weights, keyframe_model=keyframe_model, keyframe_pick=keyframe_pick,
                   keyframe_gaps=keyframe_gaps, propagate=bool(propagate), direction=direction, finish=finish, smooth=smooth, pixels=pixels, scenes=bool(scenes),
                   scene_threshold=scene_threshold, device=dev,
                   fp16=dev.type == "cuda" if fp16 is None else bool(fp16), out_format=out, engine=engine)


def _gaps(value: object) -> tuple[float, float] | None:
    """``keyframe_gaps`` checked: None, or (shortest, longest) seconds, 0 < shortest <= longest."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise fail("keyframe_gaps", "None or (shortest, longest) in seconds", value)
    try:
        shortest, longest = (float(v) for v in value if not isinstance(v, bool))  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise fail("keyframe_gaps", "None or (shortest, longest) in seconds", value) from None
    if not 0 < shortest <= longest <= MAX_KEYFRAME_GAP_S:
        raise fail("keyframe_gaps", f"seconds with 0 < shortest <= longest <= {MAX_KEYFRAME_GAP_S}", value)
    return shortest, longest
