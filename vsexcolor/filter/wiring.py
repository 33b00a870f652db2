"""The recurrence wired from a reference plan: the frames it reads (:class:`Source`), where
its segments start (:class:`Scenes`), the reference each segment starts from
(:class:`SegmentReferences`) and the props each output carries. Nothing here runs a
network: a planning build uses all of it, a render adds the backend (:mod:`.nodes`)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import vapoursynth as vs

from .callback_reads import read
from .formats import (PROP_BACKEND, PROP_KEYFRAME, PROP_NEXT_KEYFRAME, PROP_REFERENCE, PROP_SCENE_START,
                      PROP_SHOT_START, colour_props, frame_rgb, to_rgbs)
from .frame_requests import SEEK_STEP, Seen, Source, Window
from .luma import Luma
from .options import Options
from .plan import ReferencePlan
from .recurrence import LRU, Reference
from .reference import initial_state, reference_lab
from .resolution import Geometry
from .scenes import AUTOMATIC, Automatic, Scenes, Segment, is_cut

core = vs.core

#: References converted and kept: a frame between two keyframes may need both (colour
#: carried both ways), and the engine may prepare the next segment's beside them. A film's
#: other references stay on disk (:meth:`~vsexcolor.filter.ref_inputs.Keyed.rgb`).
REFERENCES_HELD = 3


@dataclass(frozen=True)
class Wiring:
    """What a ``colorize`` node is made of, but its backend.

    ``geometry``: the networks' size; ``source``: the frames; ``scenes``: frame -> segment;
    ``is_cut``: the cut test on two frames as the detector sees them; ``references``: a
    segment's :class:`Reference`; ``props``: a segment's output props; ``internal``: a blank
    YUV444PS clip of the internal size, what the recurrence's clips are made from;
    ``next_keyframe``: the segment that a segment's frames are also coloured backward from
    (:func:`next_keyframe`), None where forward alone; ``forward_counts``: whether a
    segment's forward pass counts (not where its keyframe comes later in it);
    ``keyframes``: what makes automatic keyframes, None where shots get none.
    """

    geometry: Geometry
    source: Source
    scenes: Scenes
    is_cut: Callable[[Seen, Seen], bool]
    references: SegmentReferences
    props: Callable[[Segment], dict]
    internal: vs.VideoNode
    next_keyframe: Callable[[Segment], Segment | None]
    forward_counts: Callable[[Segment], bool]
    keyframes: KeyframeMaker | None


class SegmentReferences:
    """``references(segment)`` -> the :class:`Reference` the engine starts a segment from:
    its reference at the networks' reference size and, where the reference is a frame of
    the segment's shot in colour, that frame as the segment's initial state. Called by the
    engine, under its lock; keeps the last :data:`REFERENCES_HELD` converted."""

    def __init__(self, plan: ReferencePlan, geometry: Geometry, pixels: int, multiple: int, source: Source,
                 keyframe_rgb: Callable[[int], np.ndarray] | None) -> None:
        self.plan, self.geometry, self.pixels, self.multiple = plan, geometry, pixels, multiple
        self._source, self._keyframe_rgb = source, keyframe_rgb
        self._held: LRU[tuple[int, int | None, bool], Reference] = LRU(REFERENCES_HELD)

    def __call__(self, segment: Segment) -> Reference:
        # Forward alone, the frames of a shot before its keyframe start from the keyframe's
        # colours too: closer to the truth than from the keyframe as an exemplar alone in 7
        # of 9 cases on the bundled clips (benchmarks/keyframe_placement.py). Both ways they
        # take the backward pass from it instead, and this forward pass is not used.
        seeded = self.plan.keyframe_of(segment) is not None
        key = (*segment.source, seeded)
        held = self._held.get(key)
        if held is None:
            rgb = self._rgb(*segment.source)
            held = Reference(lab=reference_lab(rgb, self.pixels, self.multiple),
                             initial=initial_state(rgb, self.geometry) if seeded else None)
            self._held.put(key, held)
        return held

    def _rgb(self, index: int, keyframe: int | None) -> np.ndarray:
        """The picture a ``Segment.source`` names: float32 sRGB [H, W, 3] in [0, 1]."""
        if index == AUTOMATIC:
            return self._keyframe_rgb(keyframe)
        if self.plan.from_clip:
            return frame_rgb(self._source.colour(index))
        return self.plan.refs[index].rgb()


def wire(clip: vs.VideoNode, luma: Luma, scene_luma: Luma | None, plan: ReferencePlan, options: Options,
         backend_name: str, multiple: int, props: dict[str, int]) -> Wiring:
    """Wire a ``colorize`` node of ``clip`` (whose luma is ``luma``; ``scene_luma``: the
    scene clip's, None for the clip itself) for a backend named ``backend_name`` whose
    internal sides are multiples of ``multiple``. ``props``: the clip's colour description."""
    geometry = Geometry.fit(clip.width, clip.height, options.pixels, multiple)
    config = options.engine
    rule = options.keyframe_rule(clip)
    # A shot's automatic keyframes are found by requests of their own (:mod:`.keyframe_requests`).
    window = Window(ahead=config.lookahead, back=SEEK_STEP + config.batch)
    source = Source(luma, geometry, window, colour_clip=to_rgbs(clip, props) if plan.from_clip else None,
                    scene_luma=scene_luma)

    def cut(before: Seen, frame: Seen) -> bool:
        return is_cut(before.detect, frame.detect, frame.upstream_cut, options.scene_threshold)

    def cut_at(n: int) -> bool:
        return cut(source.seen(n - 1), source.seen(n))

    reference_starts, shot_of = plan.restarts(cut_at if options.scenes else None)
    scenes = Scenes(clip.num_frames, reference_starts, cut_at if options.scenes else None,
                    per_scene_reference=plan.from_clip, keyframes=plan.keyframes,
                    automatic=Automatic(rule, source.seen, cut) if plan.automatic else None, shot_of=shot_of)
    keyframes = KeyframeMaker(plan, props, luma, options.device) if plan.automatic else None
    references = SegmentReferences(plan, geometry, options.pixels, multiple, source, keyframes)

    def next_keyframe(segment: Segment) -> Segment | None:
        return None if options.direction == "forward" else next_segment_of_shot(scenes, shot_of, segment)

    def output_props(segment: Segment) -> dict:
        keyframe, after = plan.keyframe_of(segment), next_keyframe(segment)
        return {PROP_BACKEND: backend_name, PROP_SCENE_START: segment.start,
                PROP_SHOT_START: segment.shot if segment.shot is not None else segment.start,
                PROP_REFERENCE: segment.reference, PROP_KEYFRAME: -1 if keyframe is None else keyframe,
                PROP_NEXT_KEYFRAME: -1 if after is None else after.start}

    def forward_counts(segment: Segment) -> bool:
        keyframe = plan.keyframe_of(segment)
        return keyframe is None or keyframe == segment.start

    internal = core.std.BlankClip(clip, width=geometry.padded_w, height=geometry.padded_h, format=vs.YUV444PS,
                                  keep=True)
    return Wiring(geometry, source, scenes, cut, references, output_props, internal, next_keyframe, forward_counts,
                  keyframes)


def next_segment_of_shot(scenes: Scenes, shot_of: dict[int, int], segment: Segment) -> Segment | None:
    """The segment after ``segment`` where it is of the same shot (a keyframe or a reference
    inside the shot restarts the recurrence there), else None. Known without reading a
    frame where a reference restarts it (the plan placed each restart in its shot,
    ``shot_of``); an automatic keyframe's, once the frames up to it and some past it are
    read (:meth:`~vsexcolor.filter.scenes.Scenes.next_automatic`)."""
    if segment.reference == AUTOMATIC:
        keyframe = scenes.next_automatic(segment)
        return None if keyframe is None else Segment(keyframe, AUTOMATIC, keyframe, segment.shot)
    after = scenes.next_restart(segment.start)
    shot = segment.shot if segment.shot is not None else segment.start
    if after >= scenes.num_frames or shot_of.get(after, after) != shot:
        return None
    return scenes.segment(after)  # a restart: its segment starts there, whatever the frames


class KeyframeMaker:
    """``maker(n)``: frame n in colour (float32 sRGB [H, W, 3]) as an automatic keyframe: from
    the keyframe clip, else coloured by the keyframe model from the luma clip's frame n
    (loaded at the first keyframe, so a render whose shots all have references never loads
    it).

    The frame it reads, of :attr:`clip`, is brought along by the request that first needs
    it (:class:`~vsexcolor.filter.keyframe_requests.KeyframeProbe`) and handed over with
    :meth:`offer`; only those frames are asked of the keyframe clip. One not handed over
    is read synchronously, outside the callback's locks (:func:`~.callback_reads.read`).
    """

    #: Frames handed over and kept: a frame's keyframe and the next one, and the next
    #: segment's, prepared beside them.
    HELD = 8

    def __init__(self, plan: ReferencePlan, props: dict[str, int], luma: Luma, device: torch.device) -> None:
        self._plan, self._luma, self._device = plan, luma, device
        if plan.keyframe_clip is not None:
            self.clip = to_rgbs(plan.keyframe_clip, colour_props(plan.keyframe_clip, props))
        else:
            self.clip = luma.clip
        self._held: LRU[int, vs.VideoFrame] = LRU(self.HELD)
        self._lock, self._loading = threading.Lock(), threading.Lock()
        self._model = None

    def offer(self, n: int, frame: vs.VideoFrame) -> None:
        with self._lock:
            self._held.put(n, frame)

    def holds(self, n: int) -> bool:
        with self._lock:
            return self._held.peek(n) is not None

    def __call__(self, n: int) -> np.ndarray:
        with self._lock:
            frame = self._held.get(n)
        if frame is None:
            frame = read(self.clip, n)
        if self._plan.keyframe_clip is not None:
            return frame_rgb(frame)
        with self._loading:  # the forward and backward engines may ask at once
            if self._model is None:
                from .keyframes import load_colorizer

                self._model = load_colorizer(self._plan.keyframe_model, self._device)
        return self._model.rgb(self._luma.L(frame))
