"""The benchmark's baselines, as backends (:class:`vsexcolor.backends.base.Backend`) so the
same loop drives them: the gray input itself, and naive flow propagation of the keyframe."""
from __future__ import annotations

import numpy as np
import torch

from ..backends import flow as of
from ..backends.base import Correspondence


class _NoReference:
    """Shared by the baselines: nothing is matched to the reference."""

    multiple = 8
    output_smoothing = False

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def prepare(self, reference_lab: torch.Tensor) -> None:
        return None

    def correspond(self, L: torch.Tensor, reference: None) -> Correspondence:
        zeros = torch.zeros((L.shape[0], 1, *L.shape[-2:]), device=self.device)
        return Correspondence(lab=zeros.expand(-1, 3, -1, -1), confidence=zeros)


class GrayBackend(_NoReference):
    """Neutral chroma everywhere: the input, unchanged."""

    name = "gray"

    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        return torch.zeros((1, 2, *L.shape[-2:]), device=self.device)


class NaiveBackend(_NoReference):
    """The previous output's chroma warped along DIS flow, nothing else (no occlusion
    handling, no reference): the keyframe's colours carried frame to frame.

    Needs an initial state; without one it has no colour and returns neutral chroma.
    """

    name = "naive"

    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        if last is None:
            return torch.zeros((1, 2, *L.shape[-2:]), device=self.device)
        prev = last[0].float().cpu().numpy()
        to_prev = of.flow(L[0, 0].float().cpu().numpy(), prev[0])
        ab = of.warp(np.dstack((prev[1], prev[2])), to_prev)
        return torch.from_numpy(ab.transpose(2, 0, 1)).unsqueeze(0).to(self.device)
