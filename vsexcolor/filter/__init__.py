"""The VapourSynth filter: :func:`colorize`.

Frames flow one way: VapourSynth frames -> L tensors -> the recurrence engine -> ab tensors
-> a float RGB clip at full resolution -> zimg converts it to the output format in the graph
-> the source luma is put back bit-exactly. The steps live in their own modules: formats and
props (:mod:`.formats`), the luma's L (:mod:`.luma`), what ``ref`` accepts
(:mod:`.ref_inputs`), the requests that drive the recurrence (:mod:`.frame_requests`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import vapoursynth as vs

from ..devices import parse_device
from .formats import (OUTPUT_PROPS, PROP_BACKEND, PROP_KEYFRAME, PROP_REFERENCE, PROP_SCENE_START, PROP_SHOT_START,
                      check_clip, colour_props, fail, frame_ab, frame_rgb, in_format, output_format, to_rgbs)
from .luma import Luma
from .postprocess import Finish, finish_rgb, for_backend
from .recurrence import EngineConfig, Recurrence, Reference
from .ref_inputs import RefInput, references
from .reference import initial_state, reference_lab
from .frame_requests import SEEK_STEP, RecurrenceRequests, Seen, Source, Window
from .resolution import DEFAULT_PIXELS, Geometry
from .scenes import (AUTOMATIC, DEFAULT_THRESHOLD, Scenes, Segment, is_cut, pick_sharpest, reference_shot_start,
                     sharpness)

__all__ = ["colorize", "PROP_BACKEND", "PROP_SCENE_START", "PROP_SHOT_START", "PROP_REFERENCE", "PROP_KEYFRAME",
           "PRESETS"]

core = vs.core

BackendName = Literal["auto", "devc", "propagate"]
Preset = Literal["default", "official"]
KeyframePick = Literal["sharpest", "first"]

#: Frames of a shot's opening that the sharpest pick looks at: its first second, and no
#: more than this many (each is held in memory while a shot starts).
MAX_PICK_SPAN = 48

PRESETS: dict[str, tuple[Finish, int]] = {
    # Smoothing keeps colour inside edges; the authors' 1.25 saturation boost tends to
    # push skin and sky to cartoon tones on real footage, so the default leaves it out.
    "default": (Finish(saturation=1.0, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
    "official": (Finish(saturation=1.25, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
}


@dataclass(frozen=True)
class Fingerprint:
    """What a ``colorize`` node's bytes depend on beyond its arguments and its input: a render
    resumed, or finished on other machines, must match it.

    ``backend``: the backend that runs; ``weights_sha256``: its checkpoint's
    (:func:`~vsexcolor.weights.devc.fingerprint`), None for ``propagate``; ``device``: ``cpu`` or
    ``cuda``; ``precision``: ``float16`` or ``float32``; ``torch``: its version;
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
    that clip's shots."""

    clip: vs.VideoNode
    scene_clip: vs.VideoNode | None
    scene_threshold: float


_recorded: ContextVar[list[Fingerprint] | None] = ContextVar("vsexcolor_recorded", default=None)
_planning: ContextVar[bool] = ContextVar("vsexcolor_planning", default=False)
_calls: ContextVar[list[Call] | None] = ContextVar("vsexcolor_calls", default=None)


@contextlib.contextmanager
def recording(planning: bool = False) -> Iterator[list[Fingerprint]]:
    """Collect the :class:`Fingerprint` of every ``colorize`` node made inside (in this thread).

    With ``planning``, ``colorize`` returns instead a clip of the same format, size and
    length whose frames are blank but carry the output's props (``VsexcolorSceneStart``...),
    made without running any network: what a farm needs to split a render into its scenes.
    Finding a frame's scene start costs the frames back to it.
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


def _fingerprint(backend: str, weights: object, device: torch.device, fp16: bool,
                 keyframe_model: Path | None) -> Fingerprint:
    from ..weights import ddcolor
    from ..weights.devc import fingerprint

    devc = backend == "devc"
    return Fingerprint(backend=backend, weights_sha256=fingerprint(weights) if devc else None,
                       device=device.type, precision="float16" if devc and fp16 else "float32",
                       torch=torch.__version__,
                       cpu_threads=torch.get_num_threads() if devc and device.type == "cpu" else None,
                       keyframe_sha256=ddcolor.fingerprint(keyframe_model) if keyframe_model else None)


def _keyframe_model(choice: str | os.PathLike[str] | None, needed: bool) -> Path | None:
    """The keyframe model's checkpoint to colour shots without a reference with: ``choice``
    (None: the preferred one in the model folder; ``"none"``: no model). Where none is found,
    an error if it is ``needed`` (no reference at all) or was named, else None: such shots
    then take the reference before them."""
    from ..weights.ddcolor import KeyframeModelError, NothingToColourFrom, keyframe_model_for

    try:
        return keyframe_model_for(choice, needed)
    except NothingToColourFrom:
        raise vs.Error("colorize: keyframe_model='none' leaves nothing to colour from: pass a reference "
                       "(ref=) or a keyframe model") from None
    except KeyframeModelError as e:
        what = "no colour reference was given and " if needed else ""
        raise vs.Error(f"colorize: {what}{e}") from None


def _is_keyframe_source(clip: vs.VideoNode, ref: object) -> bool:
    """Is ``ref`` a clip of keyframes (its frame at each shot's pick is that shot's
    keyframe) rather than one reference picture (a clip's first frame)?"""
    return isinstance(ref, vs.VideoNode) and clip.num_frames > 1 and ref.num_frames == clip.num_frames


def _size_and_length(clip: vs.VideoNode) -> str:
    return f"{clip.width}x{clip.height}, {clip.num_frames} frames"


def _make_backend(name: BackendName, weights: object, device: torch.device, fp16: bool):
    from ..weights.devc import WeightsError, load_nets

    if name in ("auto", "devc"):
        try:
            nets = load_nets(weights)
        except WeightsError as e:
            if name == "devc":
                raise vs.Error(f"colorize: backend='devc' needs the authors' weights: {e}") from None
            warnings.warn(f"vsexcolor: using the weight-free 'propagate' backend, since DEVC has no weights: {e}",
                          stacklevel=3)
        else:
            from ..backends.devc import DevcBackend

            if device.type == "cuda":
                # Same kernels in every process: no autotuning that may choose differently.
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
            return DevcBackend(*nets, device=device, dtype=torch.float16 if fp16 else torch.float32)
    from ..backends.propagate import PropagateBackend

    return PropagateBackend(device=device)


def _planned(clip: vs.VideoNode, requests: RecurrenceRequests, out_fmt: vs.VideoFormat, props: dict[str, int]
             ) -> vs.VideoNode:
    """A blank clip in the output format whose frames carry the output's props (see
    :func:`recording`); its callback owns ``requests``. Each frame brings the frames around
    it, as the recurrence's do, for the keyframe picks."""
    source = requests.source

    def mark(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        source.offer(n, f[2:], catch_up=False, planning=True)
        out = f[0].copy()
        for key, value in requests.props(requests.engine.scenes.segment(n)).items():
            out.props[key] = value
        return out

    blank = core.std.BlankClip(clip, format=out_fmt.id, keep=True)
    marked = core.std.ModifyFrame(blank, [blank, requests.probe, *source.window(catch_up=False, planning=True)],
                                  mark)
    return core.std.SetFrameProps(marked, **props)


def _finished(clip: vs.VideoNode, requests: RecurrenceRequests, geometry: Geometry, finish: Finish,
              device: torch.device) -> vs.VideoNode:
    """An RGBS clip of ``clip``'s size: the recurrence's ab brought to full size and
    finished (:func:`finish_rgb`) under the full-size L.

    The recurrence and the finish are separate frame callbacks: VapourSynth runs each one on
    one thread at a time, so the recurrence of one frame and the finish of the frame before
    run side by side. The finish callback owns ``requests`` (see :mod:`.frame_requests`): the
    recurrence lives as long as this clip.
    """
    def render(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        rgb = finish_rgb(requests.source.full_L(n, f[2]).to(device), frame_ab(f[1]), geometry, finish)[0].cpu().numpy()
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        for key in OUTPUT_PROPS:
            out.props[key] = f[1].props[key]
        return out

    canvas = core.std.BlankClip(clip, format=vs.RGBS, keep=True)
    return core.std.ModifyFrame(canvas, [canvas, requests.clip, requests.source.clip], render)


def _reference_shots(refs: list, cut_at: Callable[[int], bool] | None) -> tuple[list[int], dict[int, int]]:
    """Where each reference comes into force, and the shot start of each restart that is
    not one. A reference serves its whole shot, the frames before it included, unless the
    reference before it is in the same shot; a keyframe's own frame restarts the recurrence."""
    covers, shot_of, before, shot = [], {}, -1, 0
    for keyed in refs:
        found = reference_shot_start(keyed.start, before, cut_at)
        shot = shot if found is None else found
        covers.append(keyed.start if found is None else found)
        shot_of[covers[-1]] = shot
        if keyed.keyframe:
            shot_of[keyed.start] = shot
        before = keyed.start
    return covers, shot_of


def _keyframe_maker(keyframe_clip: vs.VideoNode | None, props: dict[str, int], model_path: Path | None,
                    source: Source, device: torch.device) -> Callable[[int], np.ndarray]:
    """``keyframe_rgb(n)``: frame n in colour (float32 sRGB [H, W, 3]) as an automatic keyframe:
    from the keyframe clip, else coloured by the keyframe model (loaded at the first keyframe,
    so a render whose shots all have references never loads it)."""
    if keyframe_clip is not None:
        colour = to_rgbs(keyframe_clip, colour_props(keyframe_clip, props))
        # One frame a shot, read when its shot starts: bringing it along with every request
        # would make the keyframe source compute every frame.
        return lambda n: frame_rgb(colour.get_frame(n))

    @functools.cache
    def colorizer():
        from .keyframes import load_colorizer

        return load_colorizer(model_path, device)

    return lambda n: colorizer().rgb(source.frame_L(n))


def colorize(
    clip: vs.VideoNode,
    ref: RefInput | Mapping[int, RefInput] | None = None,
    *,
    backend: BackendName = "auto",
    weights: str | os.PathLike[str] | None = None,
    keyframe_model: str | os.PathLike[str] | None = None,
    keyframe_pick: KeyframePick = "sharpest",
    propagate: bool = False,
    preset: Preset = "default",
    saturation: float | None = None,
    smooth: float | None = None,
    pixels: int | None = None,
    scenes: bool = True,
    scene_threshold: float = DEFAULT_THRESHOLD,
    scene_clip: vs.VideoNode | None = None,
    device: str = "auto",
    fp16: bool | None = None,
    out_format: int | vs.PresetVideoFormat | None = None,
    batch: int = 4,
    cache_frames: int = 32,
    checkpoint_every: int = 25,
    checkpoints: int = 128,
) -> vs.VideoNode:
    """Colorize ``clip`` from a colour reference (Deep Exemplar-based Video Colorization).

    Only chroma is predicted: for GRAY and YUV input the output Y plane is bit-identical to
    the input's; for RGB input the output keeps the input's CIE L*.

    Args:
        clip: GRAY, YUV (any subsampling) or RGB; 8..16-bit integer or 16/32-bit float.
        ref: the colour reference: an image path, a numpy array (H, W, 3; uint8, uint16 or
            float in [0, 1]), a VideoNode (its first frame), a mapping
            ``{first_frame: reference}`` of references each in force from its frame until
            the next (the first also before it), or a folder of images named by their first
            frame (``000123.png``; see ``vsexcolor shots``), each a keyframe where its
            lightness matches its frame's, else an exemplar. With scene detection a
            reference serves its whole shot, the frames before it included (as an exemplar
            up to it where it is a keyframe). A shot without a reference of its own gets an
            *automatic keyframe*: its picked frame (``keyframe_pick``) coloured by the
            keyframe model, propagated through the shot like a keyframe; with no keyframe
            model, it takes the reference before it. None: every shot gets an automatic
            keyframe (or, with ``propagate``, the clip's own colour frames are used). A clip
            as long as ``clip`` is a source of keyframes instead: its frame at each shot's
            pick is that shot's keyframe (only those frames are requested).
        backend: ``"devc"`` (the authors' networks; needs their weights), ``"propagate"``
            (weight-free: descriptor matching, optical flow, edge-aware fusion) or
            ``"auto"`` (devc when valid weights are found, else propagate with a warning).
        weights: the checkpoint zip or its unpacked folder (default: ``VSEXCOLOR_MODEL_DIR``
            or the per-user data folder; ``vsexcolor info`` says where).
        keyframe_model: the image colorizer of automatic keyframes (DDColor): a released
            model's name (``"ddcolor_modelscope"``, ``"ddcolor_artistic"``,
            ``"ddcolor_paper"``, ``"ddcolor_paper_tiny"``) or a checkpoint's path; None: the
            first of those present in the model folder (``vsexcolor download ddcolor``);
            ``"none"``: no automatic keyframes.
        keyframe_pick: the frame of a shot to colour: ``"sharpest"`` of its first second
            (avoids fades and motion blur; as ``vsexcolor shots`` picks) or ``"first"``.
        propagate: the authors' propagation mode: every reference is a keyframe, i.e. it
            *is* its frame in colour (of the clip's size) and the initial state of the
            recurrence at that frame (a later shot starts from it as an exemplar alone).
            With ``ref=None`` the clip itself (YUV or RGB) supplies it: the first frame of
            each scene is taken in colour and propagated through the scene.
        preset: ``"default"`` (smoothing on, saturation 1.0) or ``"official"`` (the authors'
            settings: smoothing lambda 500 / sigma 4, saturation 1.25). The propagate
            backend's output is not smoothed by default: its fusion already is, edge-aware.
        saturation: override of the preset's factor on a and b, 0..4.
        smooth: override of the preset's fast-global-smoother lambda (0: off), 0..10000;
            applies to every backend.
        pixels: internal (network) area in pixels; the aspect ratio follows the clip.
            Default 216 x 384 = 82944 as the authors trained. Range 1024..4194304.
        scenes: restart the recurrence at scene cuts: upstream ``_SceneChangePrev`` props
            where present, else a detector on frames n-1 and n.
        scene_threshold: detector threshold, 0..1 (lower finds more cuts).
        scene_clip: the clip to find cuts and pick keyframes in, instead of ``clip``: one of
            its size and length showing the same pictures but cheaper to make, such as the
            source before denoising. Planning a render (``vsexcolor render --ray``) then
            reads only this clip, so filters between it and ``clip`` run once, for the
            frames rendered. Its ``_SceneChangePrev`` props are the ones honoured, and a
            folder's references are matched against its frames first (against ``clip``'s
            only where a match falls short). None: ``clip``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
        fp16: half precision for the networks; default True on CUDA, False on CPU.
        out_format: output format for GRAY input: a YUV format of the same depth (default
            4:2:0). Must be None for YUV and RGB input, which keep their format.
        batch: frames per correspondence batch, 1..64. The next batch is worked out on a
            second thread while this one's frames are stepped.
        cache_frames: finished outputs kept in memory (>= 1).
        checkpoint_every: frames between saved recurrent states, so a seek costs at most
            this many steps once a scene has been seen (>= 1).
        checkpoints: saved states kept (>= 1; about 0.7 MB each at the default ``pixels``);
            a scene longer than ``checkpoints x checkpoint_every`` frames costs more per seek.

    Returns:
        The colorized clip; each frame carries ``VsexcolorBackend``, ``VsexcolorSceneStart``
        (first frame of its recurrence), ``VsexcolorShotStart`` (first frame of its shot),
        ``VsexcolorReference`` (index of the reference in force, the scene start in
        propagation from the clip, -1 for an automatic keyframe) and ``VsexcolorKeyframe``
        (the frame whose colour version the reference is, -1 for an exemplar).
    """
    check_clip(clip)
    if (called := _calls.get()) is not None:
        called.append(Call(clip, scene_clip, scene_threshold))
        return core.std.BlankClip(clip, format=output_format(clip, out_format).id, keep=True)
    if backend not in ("auto", "devc", "propagate"):
        raise fail("backend", "'auto', 'devc' or 'propagate'", backend)
    if preset not in PRESETS:
        raise fail("preset", "'default' or 'official'", preset)
    if keyframe_pick not in ("sharpest", "first"):
        raise fail("keyframe_pick", "'sharpest' or 'first'", keyframe_pick)
    if scene_clip is not None:
        check_clip(scene_clip, "scene_clip")
        if _size_and_length(scene_clip) != _size_and_length(clip):
            raise fail("scene_clip", f"of the clip's size and length ({_size_and_length(clip)})",
                       _size_and_length(scene_clip))
    finish, default_pixels = PRESETS[preset]
    if saturation is not None:
        if not 0.0 <= saturation <= 4.0:
            raise fail("saturation", "in 0..4", saturation)
        finish = replace(finish, saturation=float(saturation))
    if smooth is not None and not 0.0 <= smooth <= 10000.0:
        raise fail("smooth", "in 0..10000 (0: off)", smooth)
    pixels = default_pixels if pixels is None else pixels
    if not isinstance(pixels, int) or not 1024 <= pixels <= 4096 * 1024:
        raise fail("pixels", "an int in 1024..4194304", pixels)
    if not 0.0 <= scene_threshold <= 1.0:
        raise fail("scene_threshold", "in 0..1", scene_threshold)
    for name, value, low, high in (("batch", batch, 1, 64), ("cache_frames", cache_frames, 1, 1 << 20),
                                   ("checkpoint_every", checkpoint_every, 1, 1 << 20),
                                   ("checkpoints", checkpoints, 1, 1 << 20)):
        if not isinstance(value, int) or not low <= value <= high:
            raise fail(name, f"an int in {low}..{high}", value)
    out_fmt = output_format(clip, out_format)
    planning = _planning.get()
    try:
        dev = parse_device(device, here=not planning)
    except ValueError as e:
        raise vs.Error(f"colorize: device {e}") from None
    fp16 = dev.type == "cuda" if fp16 is None else bool(fp16)

    props = colour_props(clip, clip.get_frame(0).props)
    keyframe_clip = ref if _is_keyframe_source(clip, ref) else None
    if keyframe_clip is not None:
        if (keyframe_clip.width, keyframe_clip.height) != (clip.width, clip.height):
            raise fail("ref", f"a clip of keyframes of the clip's size, {clip.width}x{clip.height}",
                       f"{keyframe_clip.width}x{keyframe_clip.height}")
        ref = None
    from_clip = propagate and ref is None and keyframe_clip is None
    luma = Luma(clip, props)
    scene_luma = None if scene_clip is None else Luma(scene_clip, colour_props(scene_clip,
                                                                               scene_clip.get_frame(0).props))
    # A folder's keyframes are matched against the scene clip first, which planning reads anyway.
    lumas = [luma] if scene_luma is None else [scene_luma, luma]
    refs = references(clip, ref, propagate, lumas) if ref is not None or from_clip else []
    model_path = None if from_clip or keyframe_clip is not None else _keyframe_model(keyframe_model, not refs)
    automatic = keyframe_clip is not None or model_path is not None

    # Planning runs no network: it needs the backend's name and sizes, not its device.
    engine_backend = _make_backend(backend, weights, torch.device("cpu") if planning else dev, fp16)
    geometry = Geometry.fit(clip.width, clip.height, pixels, engine_backend.multiple)
    finish = for_backend(finish, engine_backend.output_smoothing, smooth)
    config = EngineConfig(batch=batch, cache_frames=cache_frames, checkpoint_every=checkpoint_every,
                          checkpoints=checkpoints)
    span = 1 if keyframe_pick == "first" else min(MAX_PICK_SPAN, max(1, round(clip.fps)) if clip.fps else 24)
    window = Window(ahead=max(config.lookahead, span - 1 if automatic else 0), back=SEEK_STEP + batch)
    source = Source(luma, geometry, window, colour_clip=to_rgbs(clip, props) if from_clip else None,
                    scene_luma=scene_luma)

    def cut(before: Seen, frame: Seen) -> bool:
        return is_cut(before.detect, frame.detect, frame.upstream_cut, scene_threshold)

    cut_at = (lambda n: cut(source.seen(n - 1), source.seen(n))) if scenes else None
    covers, shot_of = _reference_shots(refs, cut_at)
    keyframe_rgb = _keyframe_maker(keyframe_clip, props, model_path, source, dev)

    @functools.lru_cache(maxsize=2)
    def exemplar(reference: tuple[int, int | None]) -> tuple[np.ndarray, torch.Tensor]:
        """The reference a ``Segment.source`` names."""
        index, keyframe = reference
        if index == AUTOMATIC:
            rgb = keyframe_rgb(keyframe)
        else:
            rgb = frame_rgb(source.colour(index)) if from_clip else refs[index].rgb
        return rgb, reference_lab(rgb, pixels, engine_backend.multiple)

    def keyframe_of(segment: Segment) -> int | None:
        """The frame whose colour version is the segment's reference, if it is one of its shot."""
        if segment.reference == AUTOMATIC:
            return segment.keyframe
        if from_clip:
            return segment.start
        keyed = refs[segment.reference]
        # A keyframe is its shot's: after a cut another shot starts from it as an exemplar.
        return keyed.start if keyed.keyframe and segment.start <= keyed.start else None

    @functools.lru_cache(maxsize=2)
    def reference_for(segment: Segment) -> Reference:
        rgb, lab = exemplar(segment.source)
        # The frames of a shot before its keyframe start from the keyframe's colours too:
        # closer to the truth than from the keyframe as an exemplar alone in 7 of 9 cases on
        # the bundled clips (benchmarks/keyframe_placement.py; the README's shots workflow).
        seeded = keyframe_of(segment) is not None
        return Reference(lab=lab, initial=initial_state(rgb, geometry) if seeded else None)

    def output_props(segment: Segment) -> dict:
        keyframe = keyframe_of(segment)
        return {PROP_BACKEND: engine_backend.name, PROP_SCENE_START: segment.start,
                PROP_SHOT_START: segment.shot if segment.shot is not None else segment.start,
                PROP_REFERENCE: segment.reference, PROP_KEYFRAME: -1 if keyframe is None else keyframe}

    def pick(start: int) -> int:
        return pick_sharpest(scene_map, start, span, lambda k: sharpness(source.seen(k).detect))

    scene_map = Scenes(clip.num_frames, covers if refs else ([] if automatic else [0]), cut_at,
                       per_scene_reference=from_clip, keyframes=[r.start for r in refs if r.keyframe],
                       pick=pick if automatic else None, shot_of=shot_of)
    engine = Recurrence(engine_backend, scene_map, source.internal_L, reference_for, config)
    internal = core.std.BlankClip(clip, width=geometry.padded_w, height=geometry.padded_h, format=vs.YUV444PS,
                                  keep=True)
    requests = RecurrenceRequests(engine, source, internal, cut, output_props)
    recorded = _recorded.get()
    if recorded is not None:
        recorded.append(_fingerprint(engine_backend.name, weights, dev, fp16, model_path))
    if planning:
        return _planned(clip, requests, out_fmt, props)
    finished = _finished(clip, requests, geometry, finish, engine_backend.device)
    return in_format(clip, finished, out_fmt, props)
