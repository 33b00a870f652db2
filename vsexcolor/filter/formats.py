"""VapourSynth formats, colour props and frames <-> arrays, as the filter needs them."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import vapoursynth as vs

core = vs.core

#: Frame props written on every output frame.
PROP_BACKEND = "VsexcolorBackend"
PROP_SCENE_START = "VsexcolorSceneStart"
PROP_SHOT_START = "VsexcolorShotStart"
PROP_REFERENCE = "VsexcolorReference"
PROP_KEYFRAME = "VsexcolorKeyframe"
PROP_NEXT_KEYFRAME = "VsexcolorNextKeyframe"
OUTPUT_PROPS = (PROP_BACKEND, PROP_SCENE_START, PROP_SHOT_START, PROP_REFERENCE, PROP_KEYFRAME, PROP_NEXT_KEYFRAME)

# Frame-prop codes (ITU-T H.273) of the usual defaults.
_BT709, _BT601, _RGB_MATRIX = 1, 6, 0


def fail(param: str, expected: str, got: object) -> vs.Error:
    """The error for a bad ``colorize`` argument: what it must be, and what it was."""
    return vs.Error(f"colorize: {param} must be {expected}, got {got!r}")


def check_clip(clip: vs.VideoNode, param: str = "clip") -> None:
    """Raise unless ``clip`` is one ``colorize`` takes (as its argument ``param``)."""
    if not isinstance(clip, vs.VideoNode):
        raise fail(param, "a VideoNode", type(clip).__name__)
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise fail(param, "of constant format and size (add a resize to fix them)", "a variable clip")
    fmt = clip.format
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise fail(param, "8..16-bit integer or 16/32-bit float", fmt.name)
    if fmt.sample_type == vs.FLOAT and fmt.bits_per_sample not in (16, 32):
        raise fail(param, "8..16-bit integer or 16/32-bit float", fmt.name)
    if clip.num_frames < 1:
        raise fail(param, "at least one frame long", clip.num_frames)


def output_format(clip: vs.VideoNode, out_format: object) -> vs.VideoFormat:
    """The format ``colorize`` gives ``clip``: its own, or for GRAY a YUV one (``out_format``)."""
    fmt = clip.format
    if fmt.color_family != vs.GRAY:
        if out_format is not None:
            raise fail("out_format", "None unless the clip is GRAY (YUV and RGB keep their format)", out_format)
        return fmt
    if out_format is None:
        return core.query_video_format(vs.YUV, fmt.sample_type, fmt.bits_per_sample, 1, 1)
    try:
        out = core.get_video_format(out_format)
    except Exception:
        raise fail("out_format", "a YUV format (e.g. vs.YUV420P8)", out_format) from None
    if out.color_family != vs.YUV or out.bits_per_sample != fmt.bits_per_sample \
            or out.sample_type != fmt.sample_type:
        raise fail("out_format", f"a YUV format of the clip's sample type and depth ({fmt.name})", out.name)
    return out


def _is_hd(clip: vs.VideoNode) -> bool:
    return clip.width > 1024 or clip.height > 576


def colour_props(clip: vs.VideoNode, props: Mapping) -> dict[str, int]:
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


def range_name(props: Mapping) -> str:
    """zimg's name of the range in ``props`` (from :func:`colour_props`)."""
    return "full" if props["_Range"] == vs.RANGE_FULL else "limited"


def to_rgbs(clip: vs.VideoNode, props: dict[str, int]) -> vs.VideoNode:
    """Any GRAY / YUV / RGB clip -> RGBS (gamma-encoded, full range)."""
    family = clip.format.color_family
    if family == vs.GRAY:
        rgb = core.std.ShufflePlanes([clip] * 3, [0, 0, 0], vs.RGB)
        if clip.format.sample_type == vs.FLOAT:
            return core.resize.Point(rgb, format=vs.RGBS)
        return core.resize.Point(rgb, format=vs.RGBS, range_in_s=range_name(props), range_s="full")
    if family == vs.RGB:
        return core.resize.Point(clip, format=vs.RGBS)
    return core.resize.Bicubic(clip, format=vs.RGBS, matrix_in=props["_Matrix"], range_in_s=range_name(props))


def in_format(clip: vs.VideoNode, finished: vs.VideoNode, out_fmt: vs.VideoFormat, props: dict[str, int]
              ) -> vs.VideoNode:
    """The finished RGBS clip in the output format, with ``clip``'s own luma plane for GRAY
    and YUV input, and the colour props and those of :data:`OUTPUT_PROPS`."""
    if clip.format.color_family == vs.RGB:
        out = core.resize.Point(finished, format=clip.format.id, dither_type="error_diffusion")
    else:
        chroma = core.resize.Bicubic(finished, format=out_fmt.id, matrix=props["_Matrix"], range_s=range_name(props),
                                     dither_type="error_diffusion")
        out = core.std.ShufflePlanes([clip, chroma, chroma], [0, 1, 2], vs.YUV)
    out = core.std.CopyFrameProps(out, finished, props=list(OUTPUT_PROPS))
    return core.std.SetFrameProps(out, **props)


def shifted(clip: vs.VideoNode, offset: int) -> vs.VideoNode:
    """A clip whose frame n is ``clip``'s frame n + offset, clamped to the clip."""
    last = clip.num_frames - 1
    if offset > 0:
        return clip[-1] * clip.num_frames if offset > last else clip[offset:] + clip[-1] * offset
    if offset < 0:
        return clip[0] * clip.num_frames if -offset > last else clip[0] * -offset + clip[:offset]
    return clip


def gray_clip(frames: np.ndarray, fmt: vs.VideoFormat | int) -> vs.VideoNode:
    """A GRAY clip of format ``fmt`` whose frame n holds ``frames[n]`` ([T, H, W], of the
    format's sample type)."""
    blank = core.std.BlankClip(format=fmt, width=frames.shape[-1], height=frames.shape[-2], length=len(frames),
                               keep=True)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.copyto(np.asarray(out[0]), frames[n])
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def plane(frame: vs.VideoFrame, p: int) -> torch.Tensor:
    """Plane p of a float frame as a float32 [H, W] tensor (a copy)."""
    return torch.from_numpy(np.array(frame[p], dtype=np.float32, copy=True))


def frame_ab(frame: vs.VideoFrame) -> torch.Tensor:
    """A frame of the recurrence clip -> [1, 2, h, w] ab (float32) from its U and V planes."""
    return torch.from_numpy(np.stack([np.asarray(frame[p]) for p in (1, 2)])).unsqueeze(0)


def frame_confidence(frame: vs.VideoFrame) -> torch.Tensor:
    """A frame of the recurrence clip -> [1, 1, h, w] confidence of its correspondence
    (float32, the backend's scale) from its Y plane."""
    return torch.from_numpy(np.array(frame[0], dtype=np.float32))[None, None]


def frame_rgb(frame: vs.VideoFrame) -> np.ndarray:
    """An RGBS frame -> float32 [H, W, 3] in [0, 1]."""
    return np.stack([np.asarray(frame[p]) for p in range(3)], -1).astype(np.float32).clip(0.0, 1.0)
