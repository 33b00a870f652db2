"""Dense optical flow between luminance images, backward warping and occlusion checks.

Images are numpy float32 arrays [H, W] (CIE L, 0..100) or [H, W, C]; a flow is
[H, W, 2] float32 in pixels (x, y). ``flow(src, dst)`` is a *backward* flow: pixel ``p`` of
``src`` shows what ``dst`` shows at ``p + flow[p]``, so ``warp(dst_values, flow)`` carries
values of ``dst`` onto the ``src`` grid. The estimator is OpenCV's DIS, whose output does not
depend on OpenCV's thread count (the tests check it), so results are reproducible to the byte.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Preset = Literal["ultrafast", "fast", "medium"]

_PRESETS = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}


def l_to_u8(L: np.ndarray) -> np.ndarray:
    """CIE L (0..100) -> uint8 0..255, the input DIS and OpenCV's edge-aware filters take."""
    return np.clip(np.rint(L * 2.55), 0, 255).astype(np.uint8)


def flow(src_L: np.ndarray, dst_L: np.ndarray, preset: Preset = "medium") -> np.ndarray:
    """Backward flow [H, W, 2] from ``src_L`` to ``dst_L`` (both [H, W], L 0..100).

    A fresh DIS instance per call: the object keeps buffers between calls, and sharing one
    across threads would race.
    """
    if src_L.shape != dst_L.shape:
        raise ValueError(f"flow: frames differ in size: {src_L.shape} vs {dst_L.shape}")
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return dis.calc(l_to_u8(src_L), l_to_u8(dst_L), None)


def sample_grid(flow_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y) [H, W] for a backward flow."""
    h, w = flow_.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow_[..., 0], gy + flow_[..., 1]


def warp(values: np.ndarray, flow_: np.ndarray,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Backward-warp ``values`` [H, W] or [H, W, C] (float32) along ``flow_``.

    Samples that fall outside the image take the nearest border value; callers that care
    mark them with :func:`outside`.
    """
    map_x, map_y = sample_grid(flow_)
    return cv2.remap(np.ascontiguousarray(values, dtype=np.float32), map_x, map_y,
                     interpolation, borderMode=cv2.BORDER_REPLICATE)


def outside(flow_: np.ndarray) -> np.ndarray:
    """[H, W] bool: where the flow points outside the image (content that was not visible)."""
    h, w = flow_.shape[:2]
    map_x, map_y = sample_grid(flow_)
    return (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)


def consistency(flow_sd: np.ndarray, flow_ds: np.ndarray) -> np.ndarray:
    """[H, W] forward-backward inconsistency of a pair of flows; below 1 is consistent.

    ``flow_sd`` is ``flow(src, dst)`` and ``flow_ds`` is ``flow(dst, src)``. Going
    ``src -> dst -> src`` should return to the start; the squared miss is divided by the
    tolerance of Sundaram, Brox and Keutzer (ECCV 2010), 0.01 (|w|^2 + |w'|^2) + 0.5 pixels^2,
    which grows with the motion. Occluded and mismatched pixels score well above 1.
    """
    back = warp(flow_ds, flow_sd)
    miss = ((flow_sd + back) ** 2).sum(-1)
    tolerance = 0.01 * ((flow_sd**2).sum(-1) + (back**2).sum(-1)) + 0.5
    return miss / tolerance
