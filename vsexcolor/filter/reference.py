"""Reference images: reading, checking, and bringing them to the networks' Lab."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..color import rgb_to_lab
from .image_header import Header, declared_size
from .resolution import MAX_IMAGE_SIDE, MAX_PIXELS, Geometry, reference_size


#: File name endings of the images :func:`read_image` is used on (references, frame folders,
#: training images).
IMAGE_SUFFIXES = frozenset((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"))
#: OpenCV's JPEG decoding at 1/2, 1/4 and 1/8 of the size (libjpeg scales while it decodes),
#: as stored: EXIF's orientation is not applied, as it is not to a full-size read.
_REDUCED_JPEG = {factor: flag | cv2.IMREAD_IGNORE_ORIENTATION for factor, flag in
                 ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))}


class ReferenceError(ValueError):
    """A reference that cannot be used; the message says why."""


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header alone.

    Raises:
        ReferenceError: it does not exist, is not a PNG, JPEG, TIFF, WebP or BMP image, or
            is larger than :data:`~vsexcolor.filter.resolution.MAX_IMAGE_SIDE` on a side.
    """
    header = _header(Path(path))
    return header.width, header.height


def _header(path: Path) -> Header:
    """The image file's header, checked as :func:`image_size` says."""
    if not path.is_file():
        raise ReferenceError(f"reference image {str(path)!r} does not exist")
    try:
        header = declared_size(path)
    except OSError as e:
        raise ReferenceError(f"reference image {str(path)!r} cannot be read ({e.strerror or e})") from None
    if header is None or header.width == 0 or header.height == 0:
        raise ReferenceError(f"reference image {str(path)!r} is not a PNG, JPEG, TIFF, WebP or BMP image: "
                             f"save it as one")
    if max(header.width, header.height) > MAX_IMAGE_SIDE:
        raise ReferenceError(f"reference image {str(path)!r} is {header.width}x{header.height}, larger than the "
                             f"{MAX_IMAGE_SIDE} pixels a side vsexcolor reads: scale it down (an exemplar is used "
                             f"at 4 megapixels at most, a keyframe at the clip's size)")
    return header


def read_image(path: str | Path, at_most: int | None = None) -> np.ndarray:
    """Read an image file as float32 sRGB [H, W, 3] in [0, 1] (8- or 16-bit, gray or colour).

    ``at_most``: pixels; a larger image is read reduced to about that many, its aspect kept
    (a JPEG decoded at 1/2, 1/4 or 1/8 of its size where that keeps it larger, then any
    image area-averaged), so that it never exists at full size as floats. None: whole.

    Raises:
        ReferenceError: as :func:`image_size`, or OpenCV cannot decode it.
    """
    header = _header(Path(path))
    factor = _jpeg_factor(header.width * header.height, at_most) if header.format == "jpeg" else 1
    img = cv2.imread(str(path), _REDUCED_JPEG[factor] if factor > 1 else cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ReferenceError(f"reference image {str(path)!r} cannot be decoded (damaged or cut short): "
                             f"export it again")
    if img.dtype not in (np.uint8, np.uint16, np.float32):  # a TIFF of signed or 32-bit integers
        raise ReferenceError(f"reference image {str(path)!r} holds {img.dtype} samples: export it with 8- or "
                             f"16-bit ones")
    if at_most is not None and img.shape[0] * img.shape[1] > at_most:
        img = _area_resized(img, at_most)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    rgb = img.astype(np.float32)
    rgb /= scale  # in place: a keyframe of a large clip is read whole, and held once
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def read_reference(path: str | Path, frame: tuple[int, int]) -> np.ndarray:
    """A reference image for a clip of ``frame`` = (width, height), as :func:`read_image`:
    whole where it has the clip's size (it may be a keyframe, its frame in colour), else as
    an exemplar, at most at :data:`~vsexcolor.filter.resolution.MAX_PIXELS` (the most of it
    the networks use: :func:`reference_lab` brings it to their size)."""
    return read_image(path, None if image_size(path) == frame else MAX_PIXELS)


def _jpeg_factor(pixels: int, at_most: int | None) -> int:
    """The largest reduction of a JPEG's decoding (1, 2, 4 or 8) that leaves at least
    ``at_most`` pixels of its ``pixels``, the rest being area-averaged after."""
    if at_most is None:
        return 1
    return max((f for f in (1, 2, 4, 8) if pixels / (f * f) >= at_most), default=1)


def _area_resized(img: np.ndarray, at_most: int) -> np.ndarray:
    """An image [H, W, ...] as it is stored (8/16-bit, BGR) brought to at most ``at_most``
    pixels, its aspect kept, by area averaging."""
    height, width = img.shape[:2]
    scale = (at_most / (width * height)) ** 0.5
    return cv2.resize(img, (max(1, int(width * scale)), max(1, int(height * scale))), interpolation=cv2.INTER_AREA)


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
