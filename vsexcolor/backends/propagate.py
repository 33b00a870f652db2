"""A backend without learned weights: DEVC's recurrent design built from hand-made parts.

* Correspondence: every ``stride`` x ``stride`` cell of the frame gets a luminance-only
  descriptor (oriented gradients and intensities sampled on rings around it, DAISY-like)
  and takes the colour of the best-matching reference cell through
  :func:`vsexcolor.correspondence.match`. Its confidence combines the cosine similarity with
  the agreement of the colours matched in the neighbourhood (scattered colours mean a guess).
* Propagation (``step``): DIS optical flow from the current to the previous frame on L,
  checked forward-backward and photometrically; the previous output's ab is warped along it.
* Fusion: a per-pixel confidence-weighted mean of the propagated and the matched chroma,
  then a confidence-weighted fast global smoother guided by L fills the pixels neither source
  is sure of from their surroundings without crossing luma edges. Where nothing nearby is
  sure either, the chroma fades to neutral rather than inventing a colour.

Descriptors and matching are torch (CUDA when the backend's device is); flow, warping and
the smoother are OpenCV on the CPU at the internal resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .. import flow as of
from ..correspondence import DEFAULT_CHUNK_BYTES, match
from .base import Correspondence

#: Directions of the oriented-gradient channels (over the full circle: a dark-to-light edge
#: and a light-to-dark one are told apart, which matters for colour).
DIRECTIONS = 8
#: (Gaussian blur sigma, ring radius), both in cells, of the descriptor's sampling rings;
#: radius 0 is the centre sample. Eight samples per ring.
RINGS = ((0.5, 0.0), (1.0, 2.0), (2.0, 4.0))


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, h, w] (sigma in pixels of x), edges replicated."""
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., y, x] = x[..., y + dy, x + dx], edges replicated."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (p, p, p, p), mode="replicate")
    return x[..., p + dy:p + dy + h, p + dx:p + dx + w]


def _ring_offsets(radius: float) -> list[tuple[int, int]]:
    if radius == 0:
        return [(0, 0)]
    return [(round(radius * math.sin(a)), round(radius * math.cos(a)))
            for a in (2 * math.pi * j / 8 for j in range(8))]


def oriented_gradients(L: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] L (0..100) -> [N, DIRECTIONS, H, W] positive parts of the directional
    derivatives of L/100 (per pixel)."""
    x = F.pad(L / 100.0, (1, 1, 1, 1), mode="replicate")
    gx = (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2
    gy = (x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2
    angles = [2 * math.pi * k / DIRECTIONS for k in range(DIRECTIONS)]
    return torch.cat([F.relu(gx * math.cos(a) + gy * math.sin(a)) for a in angles], 1)


def descriptors(L: torch.Tensor, stride: int, *, gradient_floor: float = 0.01,
                intensity_weight: float = 1.0) -> torch.Tensor:
    """Luminance descriptors of the ``stride``-pixel cells of [N, 1, H, W] L (0..100).

    Returns [N, C, H/stride, W/stride]. For each ring sample (see :data:`RINGS`), an
    orientation histogram scaled to unit length (``gradient_floor`` keeps noise in flat
    areas from being blown up to full contrast) and the sample's mean L/100 relative to
    the centre's; plus the centre's own L/100, since brightness itself hints at colour.
    """
    cells_g = F.avg_pool2d(oriented_gradients(L), stride)
    cells_l = F.avg_pool2d(L / 100.0, stride)
    hists, levels = [], []
    for sigma, radius in RINGS:
        g, l_ = _blur(cells_g, sigma), _blur(cells_l, sigma)
        for dy, dx in _ring_offsets(radius):
            hists.append(_shift(g, dy, dx))
            levels.append(_shift(l_, dy, dx))
    h = torch.stack(hists, 1)  # [N, S, D, h, w]
    h = h / (torch.linalg.vector_norm(h, dim=2, keepdim=True) + gradient_floor)
    h = h.flatten(1, 2) / math.sqrt(len(hists))
    centre = levels[0]
    relative = torch.cat([lv - centre for lv in levels[1:]], 1)
    return torch.cat((h, intensity_weight * relative, intensity_weight * centre), 1)


def _local_variance(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, 1, h, w] variance over the 3x3 neighbourhood, summed over C."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    mean = F.avg_pool2d(p, 3, stride=1)
    return (F.avg_pool2d(p * p, 3, stride=1) - mean * mean).clamp(min=0).sum(1, keepdim=True)


@dataclass(frozen=True)
class PropagateReference:
    descriptors: torch.Tensor  # [1, C, h', w']
    cells_lab: torch.Tensor  # [1, 3, h', w'], the reference's mean Lab per cell
    lab: np.ndarray  # [3, H', W'] the reference itself, for the direct flow


class PropagateBackend:
    """Weight-free DEVC-style backend (see the module doc).

    Args:
        device: where descriptors and matching run.
        stride: cell size of the matching grid in pixels (4 is DEVC's grid; 8 is 16 times
            cheaper to match and is the CPU default).
        flow_preset: DIS preset for the temporal flow.
        match_weight: weight of a fully confident reference match against a fully
            confident propagated pixel in the fusion.
        similarity_floor: cosine similarity at and below which a match has no confidence.
        colour_spread: ab standard deviation (CIE units) of the matched colours in a 3x3
            cell neighbourhood at which a match's confidence falls to 1/e.
        luma_tolerance: L difference between a pixel and its flow source at which the
            propagation confidence falls to 1/e (a failed match of the flow).
        smooth_lambda, smooth_sigma: the fast global smoother's regularisation and its
            guide-edge sigma (guide in 0..255).
        neutral_weight: confidence that neutral chroma (a = b = 0) stands for; where the
            smoothed confidence is far below it the output fades to gray.
        chunk_bytes: memory bound of one similarity chunk.
    """

    name = "propagate"
    multiple = 8

    def __init__(self, *, device: torch.device | str = "cpu", stride: int | None = None,
                 flow_preset: of.Preset = "medium", match_weight: float = 0.1,
                 similarity_floor: float = 0.8, colour_spread: float = 8.0,
                 luma_tolerance: float = 4.0, flow_floor: float = 0.1, smooth_lambda: float = 100.0,
                 smooth_sigma: float = 8.0, keep_weight: float = 0.5,
                 neutral_weight: float = 0.05,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, direct: bool = True, wta_weight: float = 0.3, cut_coverage: float = 0.3) -> None:
        self.cut_coverage = cut_coverage
        self.direct = direct
        self.wta_weight = wta_weight
        self.device = torch.device(device)
        self.stride = stride if stride is not None else (4 if self.device.type == "cuda" else 8)
        if self.multiple % self.stride:
            raise ValueError(f"PropagateBackend: stride must divide {self.multiple}, got {self.stride}")
        self.flow_preset = flow_preset
        self.match_weight = match_weight
        self.similarity_floor = similarity_floor
        self.colour_spread = colour_spread
        self.luma_tolerance = luma_tolerance
        self.flow_floor = flow_floor
        self.smooth_lambda = smooth_lambda
        self.smooth_sigma = smooth_sigma
        self.keep_weight = keep_weight
        self.neutral_weight = neutral_weight
        self.chunk_bytes = chunk_bytes

    @torch.inference_mode()
    def prepare(self, reference_lab: torch.Tensor) -> PropagateReference:
        lab = reference_lab.to(self.device, torch.float32)
        return PropagateReference(descriptors=descriptors(lab[:, :1], self.stride),
                                  cells_lab=F.avg_pool2d(lab, self.stride),
                                  lab=lab[0].cpu().numpy())

    @torch.inference_mode()
    def correspond(self, L: torch.Tensor, reference: PropagateReference) -> Correspondence:
        L = L.to(self.device, torch.float32)
        # One frame at a time: a frame's result must not depend on which frames share
        # its batch (the filter promises the same bytes under any request order).
        labs, confidences = [], []
        for frame in L.split(1):
            m = match(descriptors(frame, self.stride), reference.descriptors,
                      reference.cells_lab, mode="wta", chunk_bytes=self.chunk_bytes)
            similarity = ((m.similarity - self.similarity_floor)
                          / (1.0 - self.similarity_floor)).clamp(0.0, 1.0)
            agreement = torch.exp(-_local_variance(m.values[:, 1:]) / self.colour_spread**2)
            labs.append(m.values)
            confidences.append(similarity * agreement)
        size = L.shape[-2:]
        lab = F.interpolate(torch.cat(labs), size=size, mode="bilinear", align_corners=False)
        confidence = F.interpolate(torch.cat(confidences), size=size, mode="bilinear",
                                   align_corners=False)
        if self.direct and reference.lab.shape[-2:] == tuple(size):
            lab_np, conf_np = lab.cpu().numpy(), confidence.cpu().numpy()
            for i, frame in enumerate(L[:, 0].cpu().numpy()):
                ab_d, c_d = self._transfer(frame, reference.lab)
                w_w = self.wta_weight * conf_np[i, 0]
                tot = c_d + w_w
                lab_np[i, 1:] = ((ab_d * c_d[..., None] + lab_np[i, 1:].transpose(1, 2, 0) * w_w[..., None])
                                 / np.maximum(tot, 1e-12)[..., None]).transpose(2, 0, 1)
                conf_np[i, 0] = 1 - (1 - c_d) * (1 - conf_np[i, 0] * self.wta_weight)
            lab, confidence = torch.from_numpy(lab_np).to(self.device), torch.from_numpy(conf_np).to(self.device)
        return Correspondence(lab=lab, confidence=confidence)

    def _transfer(self, L: np.ndarray, source: np.ndarray, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """ab of ``source`` ([3, H, W] Lab) carried onto the frame ``L`` [H, W] along the flow
        between them, [H, W, 2], and its confidence [H, W] (``floor``..1, 0 where the flow
        leaves the image)."""
        to_src = of.flow(L, source[0], self.flow_preset)
        to_cur = of.flow(source[0], L, self.flow_preset)
        ab = of.warp(np.dstack((source[1], source[2])), to_src)
        # Fully trusted up to the consistency tolerance and the luma tolerance, then fading.
        consistent = np.clip(2.0 - of.consistency(to_src, to_cur), 0.0, 1.0)
        luma_miss = np.maximum(np.abs(L - of.warp(source[0], to_src)) - self.luma_tolerance, 0.0)
        confidence = consistent * np.exp(-(luma_miss / self.luma_tolerance) ** 2)
        if floor > 0:
            # Scaled by how much of the frame the flow follows: after a cut it follows
            # nothing and its guesses are worthless.
            coverage = float(confidence.mean())
            confidence = np.maximum(confidence, floor * min(1.0, coverage / self.cut_coverage))
        confidence[of.outside(to_src)] = 0.0
        return ab, confidence.astype(np.float32)

    def _propagate(self, L: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Previous output's ab [H, W, 2] warped onto the current frame, and its confidence."""
        # A failed flow still lands near the right place more often than not: its colour
        # stays a weak guess, except where it points at content that was not visible.
        return self._transfer(L, last, self.flow_floor)

    @torch.inference_mode()
    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        L_np = L[0, 0].float().cpu().numpy()
        ab = corr.lab[0, 1:].float().cpu().numpy().transpose(1, 2, 0)
        certainty = corr.confidence[0, 0].float().cpu().numpy()
        if last is not None:
            ab_prop, w_prop = self._propagate(L_np, last[0].float().cpu().numpy())
            w_ref = self.match_weight * certainty
            ab = ((ab_prop * w_prop[..., None] + ab * w_ref[..., None])
                  / np.maximum(w_prop + w_ref, 1e-12)[..., None])
            certainty = 1.0 - (1.0 - w_prop) * (1.0 - certainty)
        out = self._fuse(L_np, ab, certainty)
        return torch.from_numpy(out.transpose(2, 0, 1)).unsqueeze(0).to(self.device)

    def _fuse(self, L: np.ndarray, ab: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Edge-aware, confidence-weighted fill of ``ab`` [H, W, 2] -> [H, W, 2] float32."""
        stack = np.dstack((ab * weight[..., None], weight)).astype(np.float32)
        smooth = cv2.ximgproc.fastGlobalSmootherFilter(
            of.l_to_u8(L), stack, self.smooth_lambda, self.smooth_sigma)
        support = np.maximum(smooth[..., 2], 0.0)
        filled = smooth[..., :2] / np.maximum(support, 1e-12)[..., None]
        # Sure pixels keep their chroma untouched: any shrinking or blurring of them would
        # compound frame after frame through the recurrence. The unsure take it from their
        # surroundings, faded to neutral only where those are unsure too.
        keep = np.clip(weight / self.keep_weight, 0.0, 1.0)[..., None]
        fade = np.clip(support / self.neutral_weight, 0.0, 1.0)[..., None]
        return (keep * ab + (1.0 - keep) * filled * fade).astype(np.float32)
