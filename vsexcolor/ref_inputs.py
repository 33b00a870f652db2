"""What ``colorize(ref=...)`` accepts, read into sRGB arrays."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Union

import numpy as np
import vapoursynth as vs

from .formats import colour_props, fail, frame_rgb, to_rgbs
from .reference import ReferenceError, check_array, read_image

RefInput = Union[str, "os.PathLike[str]", np.ndarray, vs.VideoNode]


def reference_rgb(ref: RefInput, param: str) -> np.ndarray:
    """One reference in any accepted form -> float32 sRGB [H, W, 3] in [0, 1]."""
    try:
        if isinstance(ref, vs.VideoNode):
            if ref.format is None or ref.width == 0 or ref.height == 0:
                raise ReferenceError("a reference clip must have a constant format and size")
            props = colour_props(ref, ref.get_frame(0).props)
            return frame_rgb(to_rgbs(ref, props).get_frame(0))
        if isinstance(ref, np.ndarray):
            return check_array(ref)
        if isinstance(ref, (str, os.PathLike)):
            return read_image(ref)
    except ReferenceError as e:
        raise vs.Error(f"colorize: {param}: {e}") from None
    raise fail(param, "an image path, a numpy array (H, W, 3) or a VideoNode", type(ref).__name__)


def references(clip: vs.VideoNode, ref: RefInput | Mapping[int, RefInput] | None, propagate: bool
               ) -> tuple[list[int], list[np.ndarray]]:
    """The first frames of the references and the references themselves (sRGB [H, W, 3]);
    no reference when propagating from the clip's own colour."""
    if ref is None:
        if not propagate:
            raise fail("ref", "a reference (image path, array, clip or {frame: reference}) unless propagate=True",
                       None)
        if clip.format.color_family == vs.GRAY:
            raise fail("clip", "YUV or RGB with colour first frames when propagate=True and ref=None", "GRAY")
        return [0], []
    if not isinstance(ref, Mapping):
        return [0], [reference_rgb(ref, "ref")]
    if not ref:
        raise fail("ref", "a non-empty mapping {first_frame: reference}", ref)
    bad = [k for k in ref if not isinstance(k, int) or not 0 <= k < clip.num_frames]
    if bad:
        raise fail("ref", f"keyed by frame numbers in 0..{clip.num_frames - 1}", bad)
    starts = sorted(ref)
    return starts, [reference_rgb(ref[k], f"ref[{k}]") for k in starts]
