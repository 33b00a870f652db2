"""The VapourSynth filter: :func:`colorize`, and what it is made of.

Frames flow one way: VapourSynth frames -> L tensors -> the recurrence engine -> ab tensors
-> a float RGB clip at full resolution -> zimg converts it to the output format in the graph
-> the source luma is put back bit-exactly. ``colorize`` itself only joins the steps, each a
module of its own: its settings checked (:mod:`.options`), where colour comes from
(:mod:`.plan`, reading what ``ref`` accepts in :mod:`.ref_inputs`), which backend runs
(:mod:`.backend_choice`), the recurrence wired (:mod:`.wiring`: frames, scenes, references)
and its clips (:mod:`.nodes`; the requests that drive them in :mod:`.frame_requests`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import vapoursynth as vs

from .backend_choice import build_backend, choose_backend, fingerprint
from .formats import (PROP_BACKEND, PROP_KEYFRAME, PROP_NEXT_KEYFRAME, PROP_REFERENCE, PROP_SCENE_START, PROP_SHOT_START,
                      check_clip, colour_props, fail, in_format, output_format)
from .luma import Luma
from .nodes import finished, planned
from .options import KEYFRAME_GAPS, PRESETS, BackendName, Direction, KeyframePick, Preset, check_options
from .plan import plan_references
from .postprocess import for_backend
from .recording import Call, Fingerprint, calls, planning, record, record_call, recording
from .ref_inputs import RefInput
from .scenes import DEFAULT_THRESHOLD
from .wiring import wire

__all__ = ["colorize", "recording", "calls", "Call", "Fingerprint", "PRESETS", "PROP_BACKEND", "PROP_SCENE_START",
           "PROP_SHOT_START", "PROP_REFERENCE", "PROP_KEYFRAME", "PROP_NEXT_KEYFRAME"]

core = vs.core


def colorize(
    clip: vs.VideoNode,
    ref: RefInput | Mapping[int, RefInput] | None = None,
    *,
    keyframe_clip: vs.VideoNode | None = None,
    backend: BackendName = "auto",
    weights: str | os.PathLike[str] | None = None,
    keyframe_model: str | os.PathLike[str] | None = None,
    keyframe_pick: KeyframePick = "sharpest",
    keyframe_gaps: tuple[float, float] | None = KEYFRAME_GAPS,
    propagate: bool = False,
    direction: Direction = "both",
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
            reference serves its whole shot, the frames before it included (see
            ``direction`` for how a keyframe's colours reach them). A shot without a reference of its own gets an
            *automatic keyframe*: its picked frame (``keyframe_pick``) coloured by the
            keyframe model, propagated through the shot like a keyframe; with no keyframe
            model, it takes the reference before it. None: every shot gets an automatic
            keyframe (or, with ``propagate``, the clip's own colour frames are used).
        keyframe_clip: a source of automatic keyframes instead of the keyframe model: a
            clip of ``clip``'s size and length whose frame at each shot's pick is that
            shot's keyframe (only those frames are requested), such as the colour original
            or a clip of hand-coloured frames. (A ``ref`` clip as long as ``clip`` is taken
            as this too, with a DeprecationWarning.)
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
        keyframe_gaps: ``(shortest, longest)`` seconds between two automatic keyframes of a
            shot (default 1.6, 4.0): a long shot gets one at the start of every ``longest``
            of it (the first: its picked frame), another between them where the picture has
            moved on from the last (the last keyframe explains under 60 % of it), no nearer
            than ``shortest`` to either, and its last frame where the last keyframe lies
            ``shortest`` or more before it; the colour of the frames between is carried both
            ways (``direction``). None: one automatic keyframe a shot, the picked frame.
            Finding them reads the frames of a shot in order (at a small size), to the end
            of the ``longest`` stretch that holds the frame rendered, and only that stretch
            (the opening too in the first); seconds count at the clip's frame rate (24 where
            it has none).
        propagate: the authors' propagation mode: every reference is a keyframe, i.e. it
            *is* its frame in colour (of the clip's size) and the initial state of the
            recurrence at that frame (a later shot starts from it as an exemplar alone).
            With ``ref=None`` the clip itself (YUV or RGB) supplies it: the first frame of
            each scene is taken in colour and propagated through the scene.
        direction: ``"both"``: a frame between two keyframes (or references) of its shot
            takes the colours carried forward from the one before it and backward from the
            one after it, fused per pixel by how near each is and how sure each match is;
            the frames of a shot before its first keyframe take them backward from it alone.
            Colour then holds to the end of a long shot instead of fading; a render costs
            up to twice as much between keyframes. ``"forward"``: from the one before only
            (the paper's recurrence). For ``devc`` the backward pass feeds the network the
            later frame's output, a use the authors did not train it for.
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
        (the frame whose colour version the reference is, -1 for an exemplar) and
        ``VsexcolorNextKeyframe`` (with ``direction="both"``, the frame of the keyframe or
        reference after it in its shot that it is also coloured backward from, else -1).
    """
    check_clip(clip)
    if record_call(Call(clip, scene_clip, scene_threshold, scenes, keyframe_pick, keyframe_gaps)):
        return core.std.BlankClip(clip, format=output_format(clip, out_format).id, keep=True)
    options = check_options(clip, backend=backend, weights=weights, keyframe_model=keyframe_model,
                            keyframe_pick=keyframe_pick, keyframe_gaps=keyframe_gaps, propagate=propagate, direction=direction, preset=preset, saturation=saturation,
                            smooth=smooth, pixels=pixels, scenes=scenes, scene_threshold=scene_threshold,
                            device=device, fp16=fp16, out_format=out_format, batch=batch, cache_frames=cache_frames,
                            checkpoint_every=checkpoint_every, checkpoints=checkpoints, planning=planning())
    props = colour_props(clip, clip.get_frame(0).props)
    luma, scene_luma = Luma(clip, props), _scene_luma(clip, scene_clip)
    # A folder's keyframes are matched against the scene clip first, which planning reads anyway.
    plan = plan_references(clip, ref, keyframe_clip, options, [luma] if scene_luma is None else [scene_luma, luma])
    choice = choose_backend(options)
    record(fingerprint(choice, options, plan.keyframe_model))
    wiring = wire(clip, luma, scene_luma, plan, options, choice.name, choice.multiple, props)
    if planning():
        return planned(clip, wiring, options.out_format, props)
    finish = for_backend(options.finish, choice.output_smoothing, options.smooth)
    rgb = finished(clip, wiring, build_backend(choice, options), options.engine, finish, options.direction)
    return in_format(clip, rgb, options.out_format, props)


def _scene_luma(clip: vs.VideoNode, scene_clip: vs.VideoNode | None) -> Luma | None:
    """The scene clip's luma, checked to show the clip's pictures (same size and length)."""
    if scene_clip is None:
        return None
    check_clip(scene_clip, "scene_clip")

    def size_and_length(c: vs.VideoNode) -> str:
        return f"{c.width}x{c.height}, {c.num_frames} frames"

    if size_and_length(scene_clip) != size_and_length(clip):
        raise fail("scene_clip", f"of the clip's size and length ({size_and_length(clip)})",
                   size_and_length(scene_clip))
    return Luma(scene_clip, colour_props(scene_clip, scene_clip.get_frame(0).props))
