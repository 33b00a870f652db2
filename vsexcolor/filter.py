"""The VapourSynth filter: :func:`colorize`.

Frames flow one way: VapourSynth frames -> L tensors -> the recurrence engine -> ab tensors
-> a float RGB clip at full resolution -> zimg converts it to the output format in the graph
-> the source luma is put back bit-exactly.
"""
from __future__ import annotations

import functools
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Literal, Union

import numpy as np
import torch
import vapoursynth as vs

from .color import gray_to_l, rgb_to_lab
from .devices import parse_device
from .memory import release_freed_memory
from .postprocess import Finish, finish_rgb, for_backend
from .recurrence import LRU, EngineConfig, Recurrence, Reference
from .reference import ReferenceError, check_array, initial_state, read_image, to_lab
from .resolution import DEFAULT_PIXELS, Geometry
from .scenes import DEFAULT_THRESHOLD, Scenes, Segment, cut_score

core = vs.core

RefInput = Union[str, "os.PathLike[str]", np.ndarray, vs.VideoNode]
BackendName = Literal["auto", "devc", "propagate"]
Preset = Literal["default", "official"]

#: Frame props written on every output frame.
PROP_BACKEND = "VsexcolorBackend"
PROP_SCENE_START = "VsexcolorSceneStart"
PROP_REFERENCE = "VsexcolorReference"

PRESETS: dict[str, tuple[Finish, int]] = {
    # Smoothing keeps colour inside edges; the authors' 1.25 saturation boost tends to
    # push skin and sky to cartoon tones on real footage, so the default leaves it out.
    "default": (Finish(saturation=1.0, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
    "official": (Finish(saturation=1.25, smooth_lambda=500.0, smooth_sigma=4.0), DEFAULT_PIXELS),
}

# Frame-prop codes (ITU-T H.273) of the usual defaults.
_BT709, _BT601, _RGB_MATRIX = 1, 6, 0


def _fail(param: str, expected: str, got: object) -> vs.Error:
    return vs.Error(f"colorize: {param} must be {expected}, got {got!r}")


def _is_hd(clip: vs.VideoNode) -> bool:
    return clip.width > 1024 or clip.height > 576


def _colour_props(clip: vs.VideoNode, props: Mapping) -> dict[str, int]:
    """Matrix, transfer, primaries and range from the props, else the usual defaults."""
    default = _BT709 if _is_hd(clip) else _BT601
    rgb = clip.format.color_family == vs.RGB

    def pick(name: str, fallback: int) -> int:
        value = props.get(name)
        return fallback if value is None or value == 2 else int(value)  # 2: unspecified

    out = {
        "_Matrix": _RGB_MATRIX if rgb else pick("_Matrix", default),
        "_Transfer": pick("_Transfer", default),
        "_Primaries": pick("_Primaries", default),
    }
    if rgb or clip.format.sample_type == vs.FLOAT:
        out["_Range"] = vs.RANGE_FULL
    elif "_Range" in props:
        out["_Range"] = int(props["_Range"])
    elif "_ColorRange" in props:  # the deprecated prop counts the other way round
        out["_Range"] = vs.RANGE_FULL if props["_ColorRange"] == 0 else vs.RANGE_LIMITED
    else:
        out["_Range"] = vs.RANGE_LIMITED
    return out


def _range_s(props: Mapping) -> str:
    return "full" if props["_Range"] == vs.RANGE_FULL else "limited"


def _to_rgbs(clip: vs.VideoNode, props: dict[str, int]) -> vs.VideoNode:
    """Any GRAY / YUV / RGB clip -> RGBS (gamma-encoded, full range)."""
    family = clip.format.color_family
    if family == vs.GRAY:
        rgb = core.std.ShufflePlanes([clip] * 3, [0, 0, 0], vs.RGB)
        if clip.format.sample_type == vs.FLOAT:
            return core.resize.Point(rgb, format=vs.RGBS)
        return core.resize.Point(rgb, format=vs.RGBS, range_in_s=_range_s(props), range_s="full")
    if family == vs.RGB:
        return core.resize.Point(clip, format=vs.RGBS)
    return core.resize.Bicubic(clip, format=vs.RGBS, matrix_in=props["_Matrix"], range_in_s=_range_s(props))


def _plane(frame: vs.VideoFrame, p: int) -> torch.Tensor:
    return torch.from_numpy(np.array(frame[p], dtype=np.float32, copy=True))


def _frame_ab(frame: vs.VideoFrame) -> torch.Tensor:
    """A frame of the recurrence clip -> [1, 2, h, w] ab (float32) from its U and V planes."""
    return torch.from_numpy(np.stack([np.asarray(frame[p]) for p in (1, 2)])).unsqueeze(0)


def _frame_rgb(frame: vs.VideoFrame) -> np.ndarray:
    """An RGBS frame -> float32 [H, W, 3]."""
    return np.stack([np.asarray(frame[p]) for p in range(3)], -1).astype(np.float32).clip(0.0, 1.0)


def _reference_rgb(ref: RefInput, param: str) -> np.ndarray:
    """One reference in any accepted form -> float32 sRGB [H, W, 3] in [0, 1]."""
    try:
        if isinstance(ref, vs.VideoNode):
            if ref.format is None or ref.width == 0 or ref.height == 0:
                raise ReferenceError("a reference clip must have a constant format and size")
            props = _colour_props(ref, ref.get_frame(0).props)
            return _frame_rgb(_to_rgbs(ref, props).get_frame(0))
        if isinstance(ref, np.ndarray):
            return check_array(ref)
        if isinstance(ref, (str, os.PathLike)):
            return read_image(ref)
    except ReferenceError as e:
        raise vs.Error(f"colorize: {param}: {e}") from None
    raise _fail(param, "an image path, a numpy array (H, W, 3) or a VideoNode", type(ref).__name__)


#: Frames one request catches up on at most. Each output request is planned when it is made
#: (:class:`_RecurrenceRequests`): one that follows a request in flight for the frame before
#: it brings along the frames around it; one with an output held up to SEEK_STEP frames
#: before it, or its scene start that close, also brings along the frames back to there; any
#: other first waits for the output SEEK_STEP frames earlier, a request of its own, so that a
#: seek far into a scene becomes a chain of short steps. The filter so never reads a frame
#: from inside a frame callback (VapourSynth R81 has left such reads stalled for good when its
#: frame cache was small), and no request holds more than about SEEK_STEP frames.
SEEK_STEP = 8

#: Recurrence outputs between calls of :func:`release_freed_memory`: without them a render's
#: memory grew by about 1 MiB per frame, with them it stays flat, for up to 100 ms per call.
RELEASE_EVERY = 32


def _weakly(method: Callable[..., object]) -> Callable[..., object]:
    """``method`` as a frame callback that does not keep its object alive.

    VapourSynth holds a node's callback from C, where Python's cycle collector cannot see
    it: a callback whose object holds that very node (or a node depending on it) keeps
    the whole graph, its engine, worker thread and models, alive after the user frees the
    output. The recurrence's callbacks so reach their object weakly, and the finish
    callback, which no node upstream reaches, owns it.
    """
    ref = weakref.WeakMethod(method)

    def call(*args, **kwargs):
        bound = ref()
        if bound is None:
            raise vs.Error("colorize: a frame was requested from a freed node")
        return bound(*args, **kwargs)

    return call


def _check_clip(clip: vs.VideoNode) -> None:
    if not isinstance(clip, vs.VideoNode):
        raise _fail("clip", "a VideoNode", type(clip).__name__)
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise _fail("clip", "of constant format and size (add a resize to fix them)", "a variable clip")
    fmt = clip.format
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise _fail("clip", "8..16-bit integer or 16/32-bit float", fmt.name)
    if fmt.sample_type == vs.FLOAT and fmt.bits_per_sample not in (16, 32):
        raise _fail("clip", "8..16-bit integer or 16/32-bit float", fmt.name)
    if clip.num_frames < 1:
        raise _fail("clip", "at least one frame long", clip.num_frames)


def _output_format(clip: vs.VideoNode, out_format: object) -> vs.VideoFormat:
    fmt = clip.format
    if fmt.color_family != vs.GRAY:
        if out_format is not None:
            raise _fail("out_format", "None unless the clip is GRAY (YUV and RGB keep their format)", out_format)
        return fmt
    if out_format is None:
        return core.query_video_format(vs.YUV, fmt.sample_type, fmt.bits_per_sample, 1, 1)
    try:
        out = core.get_video_format(out_format)
    except Exception:
        raise _fail("out_format", "a YUV format (e.g. vs.YUV420P8)", out_format) from None
    if out.color_family != vs.YUV or out.bits_per_sample != fmt.bits_per_sample \
            or out.sample_type != fmt.sample_type:
        raise _fail("out_format", f"a YUV format of the clip's sample type and depth ({fmt.name})", out.name)
    return out


def _make_backend(name: BackendName, weights: object, device: torch.device, fp16: bool):
    from .weights import WeightsError, load_nets

    if name in ("auto", "devc"):
        try:
            nets = load_nets(weights)
        except WeightsError as e:
            if name == "devc":
                raise vs.Error(f"colorize: backend='devc' needs the authors' weights: {e}") from None
            warnings.warn(f"vsexcolor: using the weight-free 'propagate' backend, since DEVC has no weights: {e}",
                          stacklevel=3)
        else:
            from .backends.devc import DevcBackend

            if device.type == "cuda":
                # Same kernels in every process: no autotuning that may choose differently.
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
            return DevcBackend(*nets, device=device, dtype=torch.float16 if fp16 else torch.float32)
    from .backends.propagate import PropagateBackend

    return PropagateBackend(device=device)


def _shifted(clip: vs.VideoNode, offset: int) -> vs.VideoNode:
    """A clip whose frame n is ``clip``'s frame n + offset, clamped to the clip."""
    last = clip.num_frames - 1
    if offset > 0:
        return clip[-1] * clip.num_frames if offset > last else clip[offset:] + clip[-1] * offset
    if offset < 0:
        return clip[0] * clip.num_frames if -offset > last else clip[0] * -offset + clip[:offset]
    return clip


class _Luma:
    """What the networks see of a clip: its luma as a clip (:attr:`clip`), and the CIE L* of
    that clip's frames (:meth:`L`)."""

    def __init__(self, clip: vs.VideoNode, props: Mapping) -> None:
        fmt = clip.format
        self._table: np.ndarray | None = None
        if fmt.color_family == vs.RGB:
            # L* is worked out from all three planes.
            self.clip = core.resize.Point(clip, format=vs.RGBS)
            return
        luma = clip if fmt.color_family == vs.GRAY else core.std.ShufflePlanes(clip, 0, vs.GRAY)
        if fmt.sample_type == vs.FLOAT:
            self.clip = core.resize.Point(luma, format=vs.GRAYS)
        else:
            # Integer luma is looked up: converting each HD frame's worth of values took the
            # recurrence's thread as long as the rest of its work on the frame.
            self.clip = luma
            self._table = _l_of_codes(fmt.bits_per_sample, props)

    def L(self, frame: vs.VideoFrame) -> torch.Tensor:
        """[1, 1, H, W] float32 L (0..100) of a frame of :attr:`clip`."""
        if self._table is not None:
            return torch.from_numpy(self._table.take(np.asarray(frame[0]), mode="clip"))[None, None]
        if self.clip.format.color_family == vs.RGB:
            rgb = torch.stack([_plane(frame, p) for p in range(3)]).unsqueeze(0).clamp(0.0, 1.0)
            return rgb_to_lab(rgb)[:, :1]
        return gray_to_l(_plane(frame, 0).clamp(0.0, 1.0))[None, None]


def _l_of_codes(bits: int, props: Mapping) -> np.ndarray:
    """float32 L of every code of ``bits``-bit integer luma in the range ``props`` give: each
    code converted to float by zimg, as a frame of float luma would be, then by
    :func:`gray_to_l`."""
    codes = np.arange(1 << bits, dtype=np.uint8 if bits == 8 else np.uint16).reshape(-1, 256)
    blank = core.std.BlankClip(format=core.query_video_format(vs.GRAY, vs.INTEGER, bits, 0, 0),
                               width=256, height=len(codes), length=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.copyto(np.asarray(out[0]), codes)
        return out

    ramp = core.resize.Point(core.std.ModifyFrame(blank, blank, fill), format=vs.GRAYS,
                             range_in_s=_range_s(props), range_s="full")
    return gray_to_l(_plane(ramp.get_frame(0), 0).clamp(0.0, 1.0)).reshape(-1).numpy()


class _Source:
    """Frames of the luma clip (:class:`_Luma`) as the engine needs them: L at full and at
    internal size, and the upstream cut prop, each converted once; and, propagating from
    the clip's own colour, the colour frames that start scenes.

    An output frame's request brings, as VapourSynth dependencies, the frames the engine
    reads for it (see :meth:`window` and SEEK_STEP); they are handed over with
    :meth:`offer`. A frame the engine reads that none brought (where a request's plan went
    stale) is read with a synchronous ``get_frame`` from inside the frame callback, which
    VapourSynth serves slowly and, with a small frame cache, has been seen to stall on.

    The last ``full_cache`` full-size L are kept: the engine reads frames up to its
    lookahead ahead of the output frame that needs the same L at full size.
    """

    def __init__(self, luma: _Luma, geometry: Geometry, cache: int, full_cache: int,
                 lookahead: int, back: int, colour_clip: vs.VideoNode | None = None) -> None:
        self.luma, self.clip, self.geometry, self.lookahead, self.back = luma, luma.clip, geometry, lookahead, back
        self.colour_clip = colour_clip
        self._cache: LRU[int, tuple[torch.Tensor, int | None]] = LRU(cache)
        self._full: LRU[int, torch.Tensor] = LRU(full_cache)
        # One output frame's worth (a catching-up one's).
        self._offered: LRU[int, vs.VideoFrame] = LRU(lookahead + back + 3)
        self._colour: LRU[int, vs.VideoFrame] = LRU(back + 2)
        self._shifts: dict[tuple[bool, int], vs.VideoNode] = {}
        # The engine reads under its own lock; output frames hand over frames and ask for
        # their L outside it.
        self._lock = threading.Lock()

    def window(self, catch_up: bool) -> list[vs.VideoNode]:
        """Clips whose frame n are what output frame n brings along: the luma clip's frames
        n - 1 (for the cut detector) and n + 1 ... n + lookahead (for the batches ahead), and
        the colour clip's frame n (a scene may start there); with ``catch_up``, also both
        clips' frames n - 2 ... n - back (the frames stepped after a seek, and the rest of
        their first batch)."""
        luma, colour = self._offsets(catch_up)
        return [self._shift(False, k) for k in luma[1:]] + \
            ([self._shift(True, k) for k in colour] if self.colour_clip is not None else [])

    def _offsets(self, catch_up: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Frame offsets of the luma and the colour frames an output frame brings along."""
        around = (0, -1, *range(1, self.lookahead + 1))
        if not catch_up:
            return around, (0,)
        back = tuple(range(-2, -self.back - 1, -1))
        return (*around, *back), (0, -1, *back)

    def _shift(self, colour: bool, offset: int) -> vs.VideoNode:
        key = (colour, offset)
        if key not in self._shifts:
            self._shifts[key] = _shifted(self.colour_clip if colour else self.clip, offset)
        return self._shifts[key]

    def offer(self, n: int, frames: list[vs.VideoFrame], catch_up: bool) -> None:
        """Hand over what output frame n brought: its luma-clip frame, then the frames of
        :meth:`window` in that order."""
        luma, colour = self._offsets(catch_up)
        with self._lock:
            for k, frame in zip(luma, frames):
                if 0 <= n + k < self.clip.num_frames:
                    self._offered.put(n + k, frame)
            if self.colour_clip is not None:
                for k, frame in zip(colour, frames[len(luma):]):
                    if 0 <= n + k < self.clip.num_frames:
                        self._colour.put(n + k, frame)

    def _read(self, clip: vs.VideoNode, n: int) -> vs.VideoFrame:
        """A frame no output frame brought along: read synchronously."""
        return clip.get_frame(n)

    def colour(self, n: int) -> vs.VideoFrame:
        """Frame n of the colour clip."""
        with self._lock:
            frame = self._colour.get(n)
        return frame if frame is not None else self._read(self.colour_clip, n)

    def full_L(self, n: int, frame: vs.VideoFrame) -> torch.Tensor:
        """[1, 1, H, W] L of frame ``n``, whose luma-clip frame is ``frame``."""
        with self._lock:
            L = self._full.get(n)
        if L is None:
            L = self.luma.L(frame)
            with self._lock:
                self._full.put(n, L)
        return L

    def _load(self, n: int) -> tuple[torch.Tensor, int | None]:
        hit = self._cache.get(n)
        if hit is None:
            with self._lock:
                frame = self._offered.get(n)
            if frame is None:
                frame = self._read(self.clip, n)
            cut = frame.props.get("_SceneChangePrev")
            hit = (self.geometry.to_internal(self.full_L(n, frame)), None if cut is None else int(cut))
            self._cache.put(n, hit)
        return hit

    def internal_L(self, n: int) -> torch.Tensor:
        return self._load(n)[0]

    def cut_prop(self, n: int) -> int | None:
        return self._load(n)[1]


class _RecurrenceRequests:
    """The recurrence as a clip: its frame n holds output n's ab at the internal size in the
    U and V planes, and every request for it is planned when it is made (see SEEK_STEP) so
    that it brings along as dependencies the frames, and where needed the earlier output,
    that the engine will read for it.
    """

    def __init__(self, engine: Recurrence, source: _Source, internal: vs.VideoNode, backend_name: str,
                 back: int) -> None:
        self.engine, self.source, self.backend_name = engine, source, backend_name
        weakref.finalize(self, engine.close)
        # Requests planned and not computed yet (frame -> its node), and the states that
        # requests for output n bring along for it (frame -> (k, output k's ab)). Entries
        # that outlive their request (one that VapourSynth served from its cache) fall out.
        self._pending: LRU[int, vs.VideoNode] = LRU(4 * back)
        self._states: LRU[int, tuple[int, torch.Tensor]] = LRU(back)
        self._planning = threading.Lock()
        self._computed = 0
        # VapourSynth runs the callbacks of the two recurrence nodes side by side; an
        # output's frames must stay offered until the engine has read them.
        self._recurring = threading.Lock()
        self._in_order, self._catching_up = (
            core.std.ModifyFrame(internal, [internal, source.clip, *source.window(catch_up)],
                                 functools.partial(_weakly(self._recur), catch_up=catch_up))
            for catch_up in (False, True))
        self.clip = core.std.FrameEval(internal, _weakly(self._plan))
        self._after_previous, self._after_step_back = (self._after(internal, d) for d in (1, SEEK_STEP))

    def _plan(self, n: int) -> vs.VideoNode:
        """The node that computes output n, chosen when it is requested."""
        held = self.engine.held(n, SEEK_STEP)
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
            elif held is not None or self.engine.start_within(n, SEEK_STEP):
                node = self._catching_up
            else:
                node = self._after_step_back
            if held is not None:
                self._states.put(n, held)  # the engine may drop it before n is computed
            self._pending.put(n, node)
        return node

    def _after(self, internal: vs.VideoNode, distance: int) -> vs.VideoNode:
        """Output n computed, catching up, once output n - distance is done (a request of
        its own), from that output."""
        return core.std.FrameEval(internal, functools.partial(_weakly(self._hand_over), distance=distance),
                                  prop_src=_shifted(self.clip, -distance))

    def _hand_over(self, n: int, f: vs.VideoFrame, distance: int) -> vs.VideoNode:
        with self._planning:
            self._states.put(n, (n - distance, _frame_ab(f)))
        return self._catching_up

    def _recur(self, n: int, f: list[vs.VideoFrame], catch_up: bool) -> vs.VideoFrame:
        with self._planning:
            state = self._states.pop(n)
        with self._recurring:
            self.source.offer(n, f[1:], catch_up)
            ab, segment = self.engine.ab(n, state)
        with self._planning:
            self._pending.pop(n)
            self._computed += 1
            release = self._computed % RELEASE_EVERY == 0
        if release:
            release_freed_memory()
        out = f[0].copy()
        for p, plane in enumerate(ab[0].cpu().numpy(), start=1):
            np.copyto(np.asarray(out[p]), plane)
        out.props[PROP_BACKEND] = self.backend_name
        out.props[PROP_SCENE_START] = segment.start
        out.props[PROP_REFERENCE] = segment.reference
        return out


def _references(clip: vs.VideoNode, ref: RefInput | Mapping[int, RefInput] | None, propagate: bool
                ) -> tuple[list[int], list[np.ndarray]]:
    """The first frames of the references and the references themselves (sRGB [H, W, 3]);
    no reference when propagating from the clip's own colour."""
    if ref is None:
        if not propagate:
            raise _fail("ref", "a reference (image path, array, clip or {frame: reference}) unless propagate=True",
                        None)
        if clip.format.color_family == vs.GRAY:
            raise _fail("clip", "YUV or RGB with colour first frames when propagate=True and ref=None", "GRAY")
        return [0], []
    if not isinstance(ref, Mapping):
        return [0], [_reference_rgb(ref, "ref")]
    if not ref:
        raise _fail("ref", "a non-empty mapping {first_frame: reference}", ref)
    bad = [k for k in ref if not isinstance(k, int) or not 0 <= k < clip.num_frames]
    if bad:
        raise _fail("ref", f"keyed by frame numbers in 0..{clip.num_frames - 1}", bad)
    starts = sorted(ref)
    return starts, [_reference_rgb(ref[k], f"ref[{k}]") for k in starts]


def _finished(clip: vs.VideoNode, requests: _RecurrenceRequests, geometry: Geometry, finish: Finish,
              device: torch.device) -> vs.VideoNode:
    """An RGBS clip of ``clip``'s size: the recurrence's ab brought to full size and
    finished (:func:`finish_rgb`) under the full-size L.

    The recurrence and the finish are separate frame callbacks: VapourSynth runs each one on
    one thread at a time, so the recurrence of one frame and the finish of the frame before
    run side by side. The finish callback owns ``requests`` (see :func:`_weakly`): the
    recurrence lives as long as this clip.
    """
    def render(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        rgb = finish_rgb(requests.source.full_L(n, f[2]).to(device), _frame_ab(f[1]), geometry, finish)[0].cpu().numpy()
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        for key in (PROP_BACKEND, PROP_SCENE_START, PROP_REFERENCE):
            out.props[key] = f[1].props[key]
        return out

    canvas = core.std.BlankClip(clip, format=vs.RGBS, keep=True)
    return core.std.ModifyFrame(canvas, [canvas, requests.clip, requests.source.clip], render)


def _in_format(clip: vs.VideoNode, finished: vs.VideoNode, out_fmt: vs.VideoFormat, props: dict[str, int]
               ) -> vs.VideoNode:
    """The finished RGBS clip in the output format, with ``clip``'s own luma plane for GRAY
    and YUV input, and the colour props."""
    if clip.format.color_family == vs.RGB:
        out = core.resize.Point(finished, format=clip.format.id, dither_type="error_diffusion")
    else:
        chroma = core.resize.Bicubic(finished, format=out_fmt.id, matrix=props["_Matrix"], range_s=_range_s(props),
                                     dither_type="error_diffusion")
        out = core.std.ShufflePlanes([clip, chroma, chroma], [0, 1, 2], vs.YUV)
    out = core.std.CopyFrameProps(out, finished, props=[PROP_BACKEND, PROP_SCENE_START, PROP_REFERENCE])
    return core.std.SetFrameProps(out, **props)


def colorize(
    clip: vs.VideoNode,
    ref: RefInput | Mapping[int, RefInput] | None = None,
    *,
    backend: BackendName = "auto",
    weights: str | os.PathLike[str] | None = None,
    propagate: bool = False,
    preset: Preset = "default",
    saturation: float | None = None,
    smooth: float | None = None,
    pixels: int | None = None,
    scenes: bool = True,
    scene_threshold: float = DEFAULT_THRESHOLD,
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
            float in [0, 1]), a VideoNode (its first frame), or a mapping
            ``{first_frame: reference}`` of keyframe references, each in force from its
            frame until the next (the first also before it). None only with ``propagate``.
        backend: ``"devc"`` (the authors' networks; needs their weights), ``"propagate"``
            (weight-free: descriptor matching, optical flow, edge-aware fusion) or
            ``"auto"`` (devc when valid weights are found, else propagate with a warning).
        weights: the checkpoint zip or its unpacked folder (default: ``VSEXCOLOR_MODEL_DIR``
            or the per-user data folder; ``vsexcolor info`` says where).
        propagate: the authors' propagation mode: each reference is also the initial state
            of its recurrence, i.e. it *is* the first frame in colour. With ``ref=None`` the
            clip itself (YUV or RGB) supplies it: the first frame of each scene is taken in
            colour and propagated through the scene.
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
        (first frame of its recurrence) and ``VsexcolorReference`` (index of the reference
        in force, or the scene start in propagation from the clip).
    """
    _check_clip(clip)
    if backend not in ("auto", "devc", "propagate"):
        raise _fail("backend", "'auto', 'devc' or 'propagate'", backend)
    if preset not in PRESETS:
        raise _fail("preset", "'default' or 'official'", preset)
    finish, default_pixels = PRESETS[preset]
    if saturation is not None:
        if not 0.0 <= saturation <= 4.0:
            raise _fail("saturation", "in 0..4", saturation)
        finish = replace(finish, saturation=float(saturation))
    if smooth is not None and not 0.0 <= smooth <= 10000.0:
        raise _fail("smooth", "in 0..10000 (0: off)", smooth)
    pixels = default_pixels if pixels is None else pixels
    if not isinstance(pixels, int) or not 1024 <= pixels <= 4096 * 1024:
        raise _fail("pixels", "an int in 1024..4194304", pixels)
    if not 0.0 <= scene_threshold <= 1.0:
        raise _fail("scene_threshold", "in 0..1", scene_threshold)
    for name, value, low, high in (("batch", batch, 1, 64), ("cache_frames", cache_frames, 1, 1 << 20),
                                   ("checkpoint_every", checkpoint_every, 1, 1 << 20),
                                   ("checkpoints", checkpoints, 1, 1 << 20)):
        if not isinstance(value, int) or not low <= value <= high:
            raise _fail(name, f"an int in {low}..{high}", value)
    out_fmt = _output_format(clip, out_format)
    try:
        dev = parse_device(device)
    except ValueError as e:
        raise vs.Error(f"colorize: device {e}") from None
    fp16 = dev.type == "cuda" if fp16 is None else bool(fp16)

    props = _colour_props(clip, clip.get_frame(0).props)
    from_clip = propagate and ref is None
    starts, references = _references(clip, ref, propagate)

    engine_backend = _make_backend(backend, weights, dev, fp16)
    geometry = Geometry.fit(clip.width, clip.height, pixels, engine_backend.multiple)
    finish = for_backend(finish, engine_backend.output_smoothing, smooth)
    luma = _Luma(clip, props)
    config = EngineConfig(batch=batch, cache_frames=cache_frames, checkpoint_every=checkpoint_every,
                          checkpoints=checkpoints)
    ahead = config.lookahead
    back = SEEK_STEP + batch  # the state SEEK_STEP frames back, and the frames of its batch
    source = _Source(luma, geometry, cache=ahead + back + 3, full_cache=ahead + 3, lookahead=ahead,
                     back=back, colour_clip=_to_rgbs(clip, props) if from_clip else None)

    def is_cut(n: int) -> bool:
        prop = source.cut_prop(n)
        if prop is not None:
            return bool(prop)
        return cut_score(source.internal_L(n - 1), source.internal_L(n)) > scene_threshold

    def reference_for(segment: Segment) -> Reference:
        rgb = _frame_rgb(source.colour(segment.start)) if from_clip else references[segment.reference]
        lab = to_lab(rgb, pixels, engine_backend.multiple)
        return Reference(lab=lab, initial=initial_state(rgb, geometry) if propagate else None)

    engine = Recurrence(
        engine_backend,
        Scenes(clip.num_frames, starts, is_cut if scenes else None, per_scene_reference=from_clip),
        source.internal_L, reference_for, config)

    internal = core.std.BlankClip(clip, width=geometry.padded_w, height=geometry.padded_h, format=vs.YUV444PS,
                                  keep=True)
    requests = _RecurrenceRequests(engine, source, internal, engine_backend.name, back)
    finished = _finished(clip, requests, geometry, finish, engine_backend.device)
    return _in_format(clip, finished, out_fmt, props)
