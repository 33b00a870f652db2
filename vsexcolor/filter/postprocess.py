"""Output finishing: chroma to full resolution, saturation, edge-aware smoothing, Lab -> RGB.

It works on each output alone and is never fed back into the recurrence.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from ..color import lab_to_rgb_fitted
from .resolution import Geometry


@dataclass(frozen=True)
class Finish:
    """How outputs are finished.

    saturation: factor on a and b (the authors use 1.25); >= 0.
    smooth_lambda: strength of OpenCV's fast global smoother on a and b, guided by the
        full-resolution L (the authors use 500); 0 turns smoothing off and leaves plain
        bilinear upsampling.
    smooth_sigma: its colour sigma in 8-bit L steps (the authors use 4).
    """

    saturation: float = 1.0
    smooth_lambda: float = 500.0
    smooth_sigma: float = 4.0


def for_backend(finish: Finish, output_smoothing: bool, smooth: float | None = None) -> Finish:
    """A preset's finish as it applies to a backend: an explicit ``smooth`` wins; otherwise a
    backend whose output is already smoothed edge-aware (``output_smoothing`` False) gets none."""
    if smooth is not None:
        return replace(finish, smooth_lambda=float(smooth))
    return finish if output_smoothing else replace(finish, smooth_lambda=0.0)


def full_resolution_ab(L: torch.Tensor, ab: torch.Tensor, geometry: Geometry, finish: Finish) -> torch.Tensor:
    """Internal [1, 2, h, w] ab -> [1, 2, H, W] ab at the size of ``L`` ([1, 1, H, W], 0..100)."""
    ab = geometry.to_full(ab.to(L.device, torch.float32)) * finish.saturation
    if finish.smooth_lambda <= 0:
        return ab
    guide = (L[0, 0] * 2.55).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    # Both channels in one call: the smoother derives its edge weights from the guide once
    # and filters each channel with them, so the result equals two separate calls.
    channels = ab[0].permute(1, 2, 0).contiguous().cpu().numpy()
    smoothed = cv2.ximgproc.fastGlobalSmootherFilter(guide, channels, finish.smooth_lambda, finish.smooth_sigma)
    return torch.from_numpy(smoothed).permute(2, 0, 1).unsqueeze(0).to(L.device)


def finish_rgb(L: torch.Tensor, ab: torch.Tensor, geometry: Geometry, finish: Finish) -> torch.Tensor:
    """Full-resolution sRGB [1, 3, H, W] in [0, 1] from full-res L and internal ab.

    Out-of-gamut colours lose chroma rather than lightness (:func:`~vsexcolor.color.fit_chroma`).
    """
    lab = torch.cat((L, full_resolution_ab(L, ab, geometry, finish)), 1)
    return _lab_to_rgb_fitted_cpu(lab) if lab.device.type == "cpu" else lab_to_rgb_fitted(lab)


# The open interval (0, 1) in float32: OpenCV clamps converted values to [0, 1], so a pixel
# with a channel at 0 or 1 may have been clipped.
_ABOVE_ZERO = float(np.nextafter(np.float32(0), np.float32(1)))
_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


def _lab_to_rgb_fitted_cpu(lab: torch.Tensor) -> torch.Tensor:
    """:func:`~vsexcolor.color.lab_to_rgb_fitted` of a [1, 3, H, W] float32 CPU frame.

    OpenCV converts every pixel, within 4e-4 of the exact formula (a tenth of an 8-bit
    step; its curves are splines), and the pixels it clipped, which include every one
    outside the gamut, are worked out again exactly and fitted: the exact formula on every
    pixel of an HD frame takes longer than the recurrence that runs beside the finish."""
    hwc = lab[0].permute(1, 2, 0).contiguous().numpy()
    unclipped = cv2.inRange(cv2.cvtColor(hwc, cv2.COLOR_Lab2LRGB), (_ABOVE_ZERO,) * 3, (_BELOW_ONE,) * 3)
    rgb = cv2.cvtColor(hwc, cv2.COLOR_Lab2RGB)
    clipped = np.flatnonzero(unclipped.reshape(-1) == 0)
    if clipped.size:
        pixels = torch.from_numpy(hwc.reshape(-1, 3)[clipped].T.copy()).unsqueeze(-1)  # [3, k, 1]
        rgb.reshape(-1, 3)[clipped] = lab_to_rgb_fitted(pixels).squeeze(-1).T.numpy()
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
