"""Dense optical flow between luminance images, backward warping and occlusion checks.

Images are numpy float32 arrays [H, W] (CIE L, 0..100) or [H, W, C]; a flow is
[H, W, 2] float32 in pixels (x, y). ``flow(src, dst)`` is a *backward* flow: pixel ``p`` of
``src`` shows what ``dst`` shows at ``p + flow[p]``, so ``warp(dst_values, flow)`` carries
values of ``dst`` onto the ``src`` grid. The estimator is OpenCV's DIS, whose output does not
depend on OpenCV's thread count (the tests check it), so results are reproducible to the byte.
"""
from __future__ import annotations

import functools
from typing import Literal

import cv2
import numpy as np

Preset = Literal["ultrafast", "fast", "balanced", "medium"]

_PRESETS = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "balanced": cv2.DISOpticalFlow_PRESET_MEDIUM,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}
#: "balanced" is MEDIUM with fewer (gradient-descent, variational-refinement) iterations
#: than its (25, 5): faster (benchmarks/README.md), and with it the propagate backend scored
#: within 0.02 dB of MEDIUM on bikes and carphone and 0.15 dB above it on bigbuckbunny
#: (`vsexcolor eval`, keyframe setting, 120 frames).
_ITERATIONS = {"balanced": (12, 3)}


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
    if preset in _ITERATIONS:
        descent, refinement = _ITERATIONS[preset]
        dis.setGradientDescentIterations(descent)
        dis.setVariationalRefinementIterations(refinement)
    return dis.calc(l_to_u8(src_L), l_to_u8(dst_L), None)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False  # shared by every caller
    return gx, gy


def sample_grid(flow_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y) [H, W] for a backward flow."""
    gx, gy = _pixel_grid(*flow_.shape[:2])
    return gx + flow_[..., 0], gy + flow_[..., 1]


def warp(values: np.ndarray, flow_: np.ndarray) -> np.ndarray:
    """Backward-warp ``values`` [H, W] or [H, W, C] (float32) along ``flow_``, bilinearly
    (sharper kernels overshoot, and through a recurrence the overshoot compounds).

    Samples that fall outside the image take the nearest border value; callers that care
    mark them with :func:`outside`.
    """
    map_x, map_y = sample_grid(flow_)
    return cv2.remap(np.ascontiguousarray(values, dtype=np.float32), map_x, map_y,
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


#: Pixels per block of :func:`warp_by_luma`: its many temporaries then stay small and reuse
#: the heap's memory, where whole-frame ones may each be fresh pages from the system,
#: faulted in on first touch.
_BLOCK_PIXELS = 8192


def warp_by_luma(planes: np.ndarray, flow_: np.ndarray, L: np.ndarray, sigma: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp ``planes`` [C, H, W] (float32; plane 0 the source's L, 0..100) along
    ``flow_`` onto a frame whose L is ``L`` [H, W], preferring the source pixels that look
    like the target pixel.

    Each of the four pixels around a sampling point is weighted by its bilinear weight times
    a Gaussian (``sigma`` in L units) of how far its L is from the target pixel's. A point that
    lands across an edge then takes the side its pixel belongs to instead of a mix of both;
    through a recurrence such mixes compound into colour bleeding over edges. Where no
    neighbour is close in L the weights fall back to bilinear ones.

    Returns the warped planes [C, H, W] and the L the flow lands on [H, W], warped plainly
    bilinearly: what checks of the flow against ``L`` need (the weighted warp pulls L
    towards ``L``). Samples outside the image take the nearest border pixel, as
    :func:`warp` does.
    """
    h, w = L.shape
    map_x, map_y = sample_grid(flow_)
    np.clip(map_x, 0, w - 1, out=map_x)
    np.clip(map_y, 0, h - 1, out=map_y)
    flat = np.ascontiguousarray(planes, dtype=np.float32).reshape(len(planes), -1)
    warped = np.empty((len(planes), h, w), np.float32)
    landed = np.empty((h, w), np.float32)
    rows = max(1, _BLOCK_PIXELS // w)
    for top in range(0, h, rows):
        block = slice(top, top + rows)
        _warp_block(flat, (h, w), map_x[block], map_y[block], L[block], sigma, warped[:, block], landed[block])
    return warped, landed


def _warp_block(flat: np.ndarray, size: tuple[int, int], map_x: np.ndarray, map_y: np.ndarray,
                L: np.ndarray, sigma: float, warped: np.ndarray, landed: np.ndarray) -> None:
    """:func:`warp_by_luma` for a block of rows: sampling points ``map_x``, ``map_y`` inside
    the image, the target L of those rows; fills ``warped`` and ``landed`` of the rows."""
    h, w = size
    x0, y0 = np.floor(map_x), np.floor(map_y)
    fx, fy = map_x - x0, map_y - y0
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    corner = y0 * w + x0
    right = x0 < w - 1
    down = (y0 < h - 1) * w
    index = np.stack((corner, corner + right, corner + down, corner + down + right))
    bilinear = np.stack(((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy))
    corners = flat.take(index, axis=1)  # [C, 4, rows, w]
    (bilinear * corners[0]).sum(0, out=landed)
    weight = np.exp((corners[0] - L) ** 2 * (-0.5 / sigma**2)) + 1e-6
    weight *= bilinear
    weight /= weight.sum(0)
    corners *= weight
    corners.sum(1, out=warped)


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
    return _squared_length(flow_sd + back) / (0.01 * (_squared_length(flow_sd) + _squared_length(back)) + 0.5)


def _squared_length(v: np.ndarray) -> np.ndarray:
    """[H, W, 2] -> [H, W] squared vector length (split planes: numpy is slow along a
    last axis of 2)."""
    x, y = cv2.split(v)
    return x * x + y * y

