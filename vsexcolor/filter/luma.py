"""What the networks see of a clip: the CIE L* of its luma."""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import vapoursynth as vs
from vsutil import get_y

from ..color import gray_to_l, rgb_to_lab
from .formats import gray_clip, plane, range_name
from .reference import image_lab

core = vs.core


class Luma:
    """A clip's luma as a clip (:attr:`clip`), and the CIE L* of that clip's frames (:meth:`L`).

    Args:
        clip: GRAY, YUV or RGB, as ``colorize`` takes it.
        props: its colour props (:func:`~vsexcolor.formats.colour_props`): the range of
            integer luma.
    """

    def __init__(self, clip: vs.VideoNode, props: Mapping) -> None:
        fmt = clip.format
        self._table: np.ndarray | None = None
        self._weights = _LUMA_WEIGHTS.get(int(props.get("_Matrix", 1)), _LUMA_WEIGHTS[1])
        if fmt.color_family == vs.RGB:
            # L* is worked out from all three planes.
            self.clip = core.resize.Point(clip, format=vs.RGBS)
            return
        luma = get_y(clip)
        if fmt.sample_type == vs.FLOAT:
            self.clip = core.resize.Point(luma, format=vs.GRAYS)
        else:
            # Integer luma has few codes: their L is worked out once and looked up. Worked out
            # per pixel it would weigh on the recurrence's thread, which takes one frame at a time.
            self.clip = luma
            self._table = _l_of_codes(fmt.bits_per_sample, props)

    def reversed(self) -> Luma:
        """The same conversion, of the clip played backwards."""
        played_back = copy.copy(self)
        played_back.clip = core.std.Reverse(self.clip)
        return played_back

    def L(self, frame: vs.VideoFrame) -> torch.Tensor:
        """[1, 1, H, W] float32 L (0..100) of a frame of :attr:`clip`."""
        if self._table is not None:
            return torch.from_numpy(self._table.take(np.asarray(frame[0]), mode="clip"))[None, None]
        if self.clip.format.color_family == vs.RGB:
            rgb = torch.stack([plane(frame, p) for p in range(3)]).unsqueeze(0).clamp(0.0, 1.0)
            return rgb_to_lab(rgb)[:, :1]
        return gray_to_l(plane(frame, 0).clamp(0.0, 1.0))[None, None]

    def L_of_colour(self, rgb: np.ndarray) -> torch.Tensor:
        """[1, 1, H, W] L (0..100) that this clip's luma would give a colour picture of it
        (float sRGB [H, W, 3] in [0, 1]): the L* of its gray value Y' by the clip's matrix,
        or for an RGB clip its own L*. A frame coloured by hand keeps its gray value, so its
        L equals its frame's."""
        if self.clip.format.color_family == vs.RGB:
            return image_lab(rgb)[None, :1]
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
        kr, kb = self._weights
        # One matrix product, not a sum of three scaled planes: a folder's sort does this to
        # every coloured picture of the clip's size, and the planes cost 20 times as long.
        gray = x @ torch.tensor((kr, 1.0 - kr - kb, kb), dtype=torch.float32)
        return gray_to_l(gray.clamp(0.0, 1.0))[None, None]


#: (Kr, Kb) of Y' = Kr R' + (1 - Kr - Kb) G' + Kb B', by _Matrix (ITU-T H.273); others as BT.709.
_LUMA_WEIGHTS = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087),
                 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}


def _l_of_codes(bits: int, props: Mapping) -> np.ndarray:
    """float32 L of every code of ``bits``-bit integer luma in the range ``props`` give: each
    code converted to float by zimg, as a frame of float luma would be, then by
    :func:`gray_to_l`."""
    codes = np.arange(1 << bits, dtype=np.uint8 if bits == 8 else np.uint16).reshape(1, -1, 256)
    ramp = core.resize.Point(gray_clip(codes, core.query_video_format(vs.GRAY, vs.INTEGER, bits, 0, 0)),
                             format=vs.GRAYS, range_in_s=range_name(props), range_s="full")
    return gray_to_l(plane(ramp.get_frame(0), 0).clamp(0.0, 1.0)).reshape(-1).numpy()
