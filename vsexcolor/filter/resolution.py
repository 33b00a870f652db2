"""The internal (network) resolution: aspect kept, area bounded, padded to what the nets need."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The authors' network input: 216 x 384 pixels.
DEFAULT_PIXELS = 216 * 384
#: The largest internal area ``colorize(pixels=...)`` takes, so the most of an exemplar
#: the networks ever use.
MAX_PIXELS = 4096 * 1024
#: The longest side, in pixels, of an image vsexcolor reads: a 16K film scan's width. A
#: larger one is refused before a pixel is decoded, so that a small file declaring a huge
#: picture cannot take the machine's memory (the image reader alone allows 2**30 pixels:
#: 3 GiB as 8-bit RGB, 12 GiB as floats); at this side an image is at most 0.75 GiB as
#: 8-bit RGB while it is decoded.
MAX_IMAGE_SIDE = 16384


@dataclass(frozen=True)
class Geometry:
    """Full frame ``width`` x ``height`` <-> internal ``w`` x ``h`` padded to ``padded_w`` x ``padded_h``."""

    width: int
    height: int
    w: int
    h: int
    padded_w: int
    padded_h: int

    @classmethod
    def fit(cls, width: int, height: int, pixels: int, multiple: int) -> "Geometry":
        """Scale ``width`` x ``height`` to about ``pixels`` pixels, never up, keeping its aspect."""
        scale = min(1.0, math.sqrt(pixels / (width * height)))
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        # The networks also need at least a few cells of their coarsest grid.
        least = 4 * multiple
        return cls(width, height, w, h, max(least, -(-w // multiple) * multiple), max(least, -(-h // multiple) * multiple))

    def to_internal(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, height, width] -> [N, C, padded_h, padded_w] (antialiased, edge-replicated)."""
        x = F.interpolate(x, size=(self.h, self.w), mode="bilinear", align_corners=False, antialias=True)
        return self.pad(x)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Replicate-pad an internal-size [N, C, h, w] tensor at the right and bottom."""
        return F.pad(x, (0, self.padded_w - self.w, 0, self.padded_h - self.h), mode="replicate")

    def to_full(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, padded_h, padded_w] -> [N, C, height, width] (padding dropped, bilinear)."""
        x = x[..., :self.h, :self.w]
        return F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)


def reference_size(width: int, height: int, pixels: int, multiple: int) -> tuple[int, int]:
    """(h, w) for a reference image: about ``pixels`` pixels, multiples of ``multiple``.

    References are resized rather than padded: padding would add positions that match
    nothing in the frame, and a slight change of aspect does not matter for matching.
    """
    scale = math.sqrt(pixels / (width * height))
    return tuple(max(4 * multiple, round(side * scale / multiple) * multiple) for side in (height, width))
