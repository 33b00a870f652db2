"""The interface the recurrence engine drives.

All tensors are CIE Lab in natural units (L 0..100, raw a and b), shape [N, C, H, W], on the
backend's device, at the internal resolution the engine chose (H and W multiples of
``Backend.multiple``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class Correspondence:
    """The reference's colours carried to a batch of frames.

    ``lab``: [N, 3, H, W] warped reference Lab; ``confidence``: [N, 1, H, W], higher is surer
    (cosine similarity for DEVC, -1..1).
    """

    lab: torch.Tensor
    confidence: torch.Tensor

    def __getitem__(self, i: int) -> "Correspondence":
        return Correspondence(self.lab[i:i + 1], self.confidence[i:i + 1])


class Backend(Protocol):
    #: Name recorded in the output frame props.
    name: str
    #: Internal width and height must be multiples of this.
    multiple: int
    #: Whether the output finish smooths this backend's chroma by default (edge-aware, guided
    #: by the full-resolution L). False for backends whose output is smoothed that way already.
    output_smoothing: bool
    device: torch.device

    def prepare(self, reference_lab: torch.Tensor) -> Any:
        """Once per reference ([1, 3, H', W'] Lab): whatever ``correspond`` reuses."""

    def correspond(self, L: torch.Tensor, reference: Any) -> Correspondence:
        """Non-recurrent part for a batch of frames ([N, 1, H, W] L). The engine runs it on
        a worker thread, beside ``step``."""

    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        """Recurrent part for one frame: [1, 2, H, W] ab (float32).

        ``last`` is the previous output as [1, 3, H, W] Lab, the scene's initial state, or
        None at a scene start without one.
        """
