"""Automatic keyframes: a gray frame coloured by an image colorizer (DDColor), so that a shot
with no reference of its own still starts from one.

As in the authors' image pipeline, only chroma is predicted: the network sees the frame at
``size`` x ``size`` as gray sRGB, its a*b* are brought back to the frame's size, and the
frame's own L* is kept, so a keyframe matches its frame's lightness like one coloured by hand.
Nothing here knows about VapourSynth: frames come in as L tensors.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..color import lab_to_rgb
from ..weights.ddcolor import load_keyframe_model

#: The square side (pixels) DDColor was trained and is released for.
DEFAULT_SIZE = 512


class KeyframeColorizer:
    """Colours single frames with an image colorizer.

    Args:
        net: a DDColor in eval mode: gray sRGB [N, 3, S, S] in [0, 1] -> raw a*b* [N, 2, S, S].
        device: where it runs; the net is moved there.
        fp16: half precision (CUDA only; the CPU has no fast half kernels).
        size: the network's square input side S in pixels, a multiple of 32.
    """

    def __init__(self, net: nn.Module, device: torch.device, fp16: bool = False, size: int = DEFAULT_SIZE) -> None:
        if size % 32:
            raise ValueError(f"size must be a multiple of 32, got {size}")
        self.device, self.size = device, size
        self.dtype = torch.float16 if fp16 and device.type == "cuda" else torch.float32
        self.net = net.to(device=device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def ab(self, L: torch.Tensor) -> torch.Tensor:
        """[1, 1, H, W] L* (0..100) of a frame -> its predicted a*b*, [1, 2, H, W] float32."""
        small = F.interpolate(L.float(), size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)
        gray = lab_to_rgb(torch.cat((small, torch.zeros_like(small).expand(-1, 2, -1, -1)), 1)).clamp(0.0, 1.0)
        ab = self.net(gray.to(self.device, self.dtype)).float().cpu()
        # Bilinear, not the authors' nearest: chroma edges stay soft, as the eye expects.
        return F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)

    def rgb(self, L: torch.Tensor) -> np.ndarray:
        """[1, 1, H, W] L* (0..100) of a frame -> the frame in colour, float32 sRGB [H, W, 3]
        in [0, 1] with the frame's own L*."""
        lab = torch.cat((L.float().cpu(), self.ab(L)), 1)
        return lab_to_rgb(lab)[0].clamp(0.0, 1.0).permute(1, 2, 0).contiguous().numpy()


def load_colorizer(choice: str | os.PathLike[str] | None, device: torch.device) -> KeyframeColorizer:
    """The keyframe model ``choice`` (as for :func:`~vsexcolor.weights.ddcolor.load_keyframe_model`)
    ready to colour frames on ``device``: what ``colorize`` and ``vsexcolor shots --colorize``
    both colour automatic keyframes with. In float32 everywhere: half precision on CUDA has
    not been measured against it yet, and one keyframe a shot costs little on a GPU.

    Raises:
        KeyframeModelError: the checkpoint is missing, damaged or does not fit the network.
    """
    return KeyframeColorizer(load_keyframe_model(choice), device)
