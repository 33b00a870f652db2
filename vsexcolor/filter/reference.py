"""Reference images: reading, checking, and bringing them to the networks' Lab."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..color import rgb_to_lab
from .resolution import Geometry, reference_size


#: File name endings of the images :func:`read_image` is used on (references, frame folders,
#: training images).
IMAGE_SUFFIXES = frozenset((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"))


class ReferenceError(ValueError):
    """A reference that cannot be used; the message says why."""


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 sRGB [H, W, 3] in [0, 1] (8- or 16-bit, gray or colour)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"reference image {str(path)!r} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ReferenceError(f"reference image {str(path)!r} is not an image OpenCV can read")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    return (img.astype(np.float32) / scale).clip(0.0, 1.0)


def check_array(image: np.ndarray) -> np.ndarray:
    """A user's array -> float32 sRGB [H, W, 3] in [0, 1].

    Accepts [H, W, 3] uint8 (0..255), uint16 (0..65535) or float (0..1).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ReferenceError(f"a reference array must have shape (height, width, 3), got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ReferenceError("a float reference array must hold values in [0, 1]")
        return image.astype(np.float32)
    raise ReferenceError(f"a reference array must be uint8, uint16 or float, got {image.dtype}")


def image_lab(rgb: np.ndarray) -> torch.Tensor:
    """float sRGB [..., H, W, 3] in [0, 1], as images are read -> Lab [..., 3, H, W], same size."""
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).movedim(-1, -3))


def _resized(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """float sRGB [H, W, 3] -> [1, 3, h, w] at ``size`` (h, w), antialiased bilinear."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def reference_lab(rgb: np.ndarray, pixels: int, multiple: int) -> torch.Tensor:
    """float sRGB [H, W, 3] -> Lab [1, 3, h, w] at the networks' reference size."""
    size = reference_size(rgb.shape[1], rgb.shape[0], pixels, multiple)
    return rgb_to_lab(_resized(rgb, size).clamp(0.0, 1.0))


def initial_state(rgb: np.ndarray, geometry: Geometry) -> torch.Tensor:
    """A colour frame as the first state of a recurrence (propagation mode): float sRGB
    [H', W', 3] -> Lab [1, 3, padded_h, padded_w], brought to the frame size and then to the
    internal size the way the frames are."""
    full = _resized(rgb, (geometry.height, geometry.width))
    return rgb_to_lab(geometry.to_internal(full).clamp(0.0, 1.0))
