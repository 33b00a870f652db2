"""A backend without learned weights: DEVC's recurrent design built from hand-made parts.

* Correspondence (``correspond``), two sources:

  - descriptor matching: every cell of a grid (``stride`` pixels) gets a luminance-only
    descriptor (oriented gradients and intensities sampled on rings around it, DAISY-like)
    and takes the colour of the best-matching reference cell through
    :func:`vsexcolor.correspondence.match` (winner-take-all). Its confidence combines the
    cosine similarity with the agreement of the colours matched around it (scattered
    colours mean a guess). It finds content anywhere in the reference, coarsely.
  - direct flow: dense DIS optical flow from the frame to the reference, trusted where it
    is forward-backward consistent and the luma it lands on matches, and only as far as it
    follows a fair part of the frame (else the reference shows another scene). Where the
    reference shows the same scene (always so in propagation mode, whose reference is the
    scene's first frame) it carries the reference's colours at full detail and without
    the drift a frame-to-frame chain accumulates.

* Propagation (``step``): DIS optical flow from the current to the previous frame on L,
  checked the same way (a flow that follows almost nothing has crossed a cut); the
  previous output's ab is warped along it. Every warp weights the source pixels around a
  sampling point by how close their luminance is to the pixel's
  (:func:`vsexcolor.flow.warp_by_luma`), so that colours do not mix across edges.
* Colour lines: wherever colour is carried (along a flow, or from a matched reference
  cell) it is carried with its local slope against luminance (:func:`luma_slopes`), and
  shifted along that slope by the difference between the pixel's L and the L it came from.
  A pixel that lands a little off its source (a fraction of a pixel across an edge, a
  brightening, a cell's mean) then takes the colour its own luminance has there instead
  of the source's.
* Fusion: a per-pixel confidence-weighted mean of the propagated and the matched chroma,
  then a confidence-weighted fast global smoother guided by L fills the pixels neither source
  is sure of from their surroundings without crossing luma edges. Where nothing nearby is
  sure either, the chroma fades to neutral rather than inventing a colour.

Descriptors and matching are torch (CUDA when the backend's device is); flow and the
smoother are OpenCV, and warping numpy, on the CPU at the internal resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import flow as of
from .correspondence import DEFAULT_CHUNK_BYTES, match
from .base import Correspondence

#: Directions of the oriented-gradient channels (over the full circle: a dark-to-light edge
#: and a light-to-dark one are told apart, which matters for colour).
DIRECTIONS = 8
#: (Gaussian blur sigma, ring radius, angle of the first sample), in cells and radians, of
#: the descriptor's sampling rings: the centre, then four samples on each ring, the outer
#: ring turned by 45 degrees to fill the gaps of the inner one.
RINGS = ((0.5, 0.0, 0.0), (1.0, 2.0, 0.0), (2.0, 4.0, math.pi / 4))
#: Samples per ring (other than the centre).
RING_SAMPLES = 4
#: Added to the length of an orientation histogram before it is scaled to unit length, so
#: that noise in flat areas (gradients of L/100 per pixel well below this) is not blown up
#: to full contrast.
GRADIENT_FLOOR = 0.01
#: Colour lines (:func:`luma_slopes`): radius in pixels of the windows the slopes are fitted
#: over, the L variance (CIE L units squared) added to each window's, which pulls the slope
#: of flat windows (noise, not structure) to zero, and the largest slope kept, in ab units
#: per L unit. Chosen with ``vsexcolor eval`` (keyframe setting, 120 frames): windows of 5 and
#: 9 pixels scored 0.04 and 0.19 dB below 3 on carphone; with 5, a regularisation of 10 or 50
#: scored within 0.01 dB of 25.
SLOPE_RADIUS = 1
SLOPE_REGULARISATION = 25.0
SLOPE_LIMIT = 2.0


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


def _ring_offsets(radius: float, angle: float) -> list[tuple[int, int]]:
    """Integer (dy, dx) cell offsets of one ring's samples."""
    if radius == 0:
        return [(0, 0)]
    return [(round(radius * math.sin(a)), round(radius * math.cos(a)))
            for a in (angle + 2 * math.pi * j / RING_SAMPLES for j in range(RING_SAMPLES))]


def oriented_gradients(L: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] L (0..100) -> [N, DIRECTIONS, H, W] positive parts of the directional
    derivatives of L/100 (per pixel)."""
    x = F.pad(L / 100.0, (1, 1, 1, 1), mode="replicate")
    gx = (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2
    gy = (x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2
    angles = [2 * math.pi * k / DIRECTIONS for k in range(DIRECTIONS)]
    return torch.cat([F.relu(gx * math.cos(a) + gy * math.sin(a)) for a in angles], 1)


def descriptors(L: torch.Tensor, stride: int) -> torch.Tensor:
    """Luminance descriptors of the ``stride``-pixel cells of [N, 1, H, W] L (0..100).

    Returns [N, 81, H/stride, W/stride]. For each of the 9 ring samples (see :data:`RINGS`),
    an orientation histogram scaled to unit length (see :data:`GRADIENT_FLOOR`) and the
    sample's mean L/100 relative to the centre's; plus the centre's own L/100, since
    brightness itself hints at colour. Cell means make it robust to noise and to sub-cell
    shifts; the rings give it the context that tells similar cells apart.
    """
    cells_g = F.avg_pool2d(oriented_gradients(L), stride)
    cells_l = F.avg_pool2d(L / 100.0, stride)
    hists, levels = [], []
    for sigma, radius, angle in RINGS:
        g, l_ = _blur(cells_g, sigma), _blur(cells_l, sigma)
        for dy, dx in _ring_offsets(radius, angle):
            hists.append(_shift(g, dy, dx))
            levels.append(_shift(l_, dy, dx))
    h = torch.stack(hists, 1)  # [N, S, D, h, w]
    h = h / (torch.linalg.vector_norm(h, dim=2, keepdim=True) + GRADIENT_FLOOR)
    h = h.flatten(1, 2) / math.sqrt(len(hists))
    centre = levels[0]
    relative = torch.cat([lv - centre for lv in levels[1:]], 1)
    return torch.cat((h, relative, centre), 1)


def luma_slopes(lab: np.ndarray) -> np.ndarray:
    """Local slopes of a and b against L of a Lab image [3, H, W] -> [2, H, W] float32.

    Least-squares fits ``ab = slope * L + offset`` over the (2 * :data:`SLOPE_RADIUS` + 1)
    pixel square around each pixel (with :data:`SLOPE_REGULARISATION` added to the L
    variance), averaged over the windows that cover the pixel as a guided filter does,
    clipped to :data:`SLOPE_LIMIT`. Unit: ab per L unit.
    """
    size = (2 * SLOPE_RADIUS + 1,) * 2
    mean = lambda x: cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    L = np.ascontiguousarray(lab[0], dtype=np.float32)
    mean_l = mean(L)
    variance = mean(L * L) - mean_l * mean_l + SLOPE_REGULARISATION
    slopes = []
    for c in lab[1:]:
        c = np.ascontiguousarray(c, dtype=np.float32)
        slope = (mean(L * c) - mean_l * mean(c)) / variance
        slopes.append(np.clip(mean(slope), -SLOPE_LIMIT, SLOPE_LIMIT))
    return np.stack(slopes)


Planes = TypeVar("Planes", np.ndarray, torch.Tensor)


def follow_luma(lab: Planes, slopes: Planes, L: Planes) -> Planes:
    """ab of ``lab`` moved along its colour lines ``slopes`` to the luminance ``L``.

    numpy or torch alike: ``lab`` [..., 3, H, W] (the carried L, a, b), ``slopes``
    [..., 2, H, W] (see :func:`luma_slopes`), ``L`` broadcastable to [..., 1, H, W].
    Returns ab [..., 2, H, W].
    """
    return lab[..., 1:3, :, :] + slopes * (L - lab[..., :1, :, :])


def _with_slopes(lab: np.ndarray) -> np.ndarray:
    """Lab [3, H, W] -> [5, H, W]: Lab and its :func:`luma_slopes`, what a flow carries."""
    return np.concatenate((lab, luma_slopes(lab)))


def _local_variance(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, 1, h, w] variance over the 3x3 neighbourhood, summed over C."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    mean = F.avg_pool2d(p, 3, stride=1)
    return (F.avg_pool2d(p * p, 3, stride=1) - mean * mean).clamp(min=0).sum(1, keepdim=True)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of [N, C, H, W] to ``size`` (h, w); a no-op at that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class PropagateReference:
    """A prepared reference: its Lab, and what matching needs at each frame size (made on
    first use; the engine keeps one reference per segment, so the memo stays small)."""

    def __init__(self, lab: torch.Tensor) -> None:
        self.lab = lab  # [1, 3, H', W']
        self._fitted: dict[tuple[int, int], _Fitted] = {}

    def fitted(self, size: tuple[int, int], backend: "PropagateBackend") -> "_Fitted":
        if size not in self._fitted:
            self._fitted[size] = backend.fit(self.lab, size)
        return self._fitted[size]


@dataclass(frozen=True)
class _Fitted:
    """The reference brought to a frame size (h, w)."""

    stride: int
    descriptors: torch.Tensor  # [1, C, h'/stride, w'/stride], at the frame's scale
    cells: torch.Tensor  # [1, 5, h'/stride, w'/stride], mean Lab and mean luma_slopes per cell
    planes: np.ndarray | None  # [5, h, w] Lab resized to the frame and its luma_slopes, for
    # the direct flow; None if the aspect ratios differ too much for a flow to make sense


class PropagateBackend:
    """Weight-free DEVC-style backend (see the module doc).

    Args:
        device: where descriptors and matching run.
        max_cells: the matching grid is 4 pixels (DEVC's) unless that gives more cells than
            this, then 8 (16 times cheaper to match). Default 2048 on the CPU, 8192 on CUDA.
        flow_preset: DIS preset of all flows.
        similarity_floor: cosine similarity at and below which a descriptor match has no
            confidence (unrelated images still reach about 0.7).
        colour_spread: ab standard deviation (CIE units) of the colours matched in a 3x3
            cell neighbourhood at which a descriptor match's confidence falls to 1/e.
        descriptor_weight: weight of a fully confident descriptor match against a fully
            confident direct-flow one.
        luma_tolerance: L difference between a pixel and where a flow lands that is fully
            trusted; the confidence falls to 1/e at twice it.
        warp_sigma: L difference (CIE units) at which a source pixel's say in a warped
            sample falls to 1/sqrt(e) of its bilinear weight (:func:`vsexcolor.flow.warp_by_luma`).
        flow_floor: confidence kept by the propagated colour where the frame-to-frame flow
            fails its checks.
        cut_coverage: mean confidence of a flow (frame to previous frame, or frame to
            reference) at and below which it is taken to join different scenes and carries
            nothing; it is fully trusted from twice this. Measured between consecutive
            frames: 0.0 across real cuts, 0.55 and more within shots, about 0.25 between
            unrelated random textures.
        reference_weight: weight of a fully confident correspondence against a fully
            confident propagated pixel in the fusion.
        keep_confidence: confidence from which a pixel keeps its fused chroma untouched.
        neutral_support: smoothed confidence below which the filled chroma fades to gray.
        smooth_lambda, smooth_sigma: the fast global smoother's regularisation and its
            guide-edge sigma (guide in 8-bit L steps).
        chunk_bytes: memory bound of one similarity chunk.
    """

    name = "propagate"
    multiple = 8
    # Its fusion already smooths edge-aware; smoothing the output again blurs chroma detail
    # the flow carried correctly (measured by `vsexcolor eval`: 0.6 to 2.2 dB lower PSNR).
    output_smoothing = False

    def __init__(self, *, device: torch.device | str = "cpu", max_cells: int | None = None,
                 flow_preset: of.Preset = "balanced", similarity_floor: float = 0.8,
                 colour_spread: float = 4.0, descriptor_weight: float = 0.3,
                 luma_tolerance: float = 4.0, warp_sigma: float = 2.0, flow_floor: float = 0.1,
                 cut_coverage: float = 0.25, reference_weight: float = 0.3, keep_confidence: float = 0.5,
                 neutral_support: float = 0.05, smooth_lambda: float = 100.0,
                 smooth_sigma: float = 8.0, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.device = torch.device(device)
        self.max_cells = max_cells if max_cells is not None else (8192 if self.device.type == "cuda" else 2048)
        self.flow_preset = flow_preset
        self.similarity_floor = similarity_floor
        self.colour_spread = colour_spread
        self.descriptor_weight = descriptor_weight
        self.luma_tolerance = luma_tolerance
        self.warp_sigma = warp_sigma
        self.flow_floor = flow_floor
        self.cut_coverage = cut_coverage
        self.reference_weight = reference_weight
        self.keep_confidence = keep_confidence
        self.neutral_support = neutral_support
        self.smooth_lambda = smooth_lambda
        self.smooth_sigma = smooth_sigma
        self.chunk_bytes = chunk_bytes

    def stride(self, size: tuple[int, int]) -> int:
        """Matching grid step in pixels for frames of ``size`` (h, w)."""
        return 4 if (size[0] // 4) * (size[1] // 4) <= self.max_cells else 8

    def fit(self, lab: torch.Tensor, size: tuple[int, int]) -> _Fitted:
        """Reference Lab [1, 3, H', W'] -> what matching frames of ``size`` (h, w) needs.

        Descriptors are not scale-invariant, so the reference is first brought to the
        frame's pixel count (its own aspect kept, sides multiples of the stride).
        """
        stride = self.stride(size)
        h, w = size
        rh, rw = lab.shape[-2:]
        scale = math.sqrt(h * w / (rh * rw))
        scaled = (max(stride, round(rh * scale / stride) * stride), max(stride, round(rw * scale / stride) * stride))
        ref = _resize(lab, scaled)
        planes = torch.from_numpy(_with_slopes(ref[0].cpu().numpy())).unsqueeze(0).to(ref)
        same_aspect = abs(math.log((rw / rh) / (w / h))) < 0.05
        return _Fitted(stride=stride, descriptors=descriptors(ref[:, :1], stride),
                       cells=F.avg_pool2d(planes, stride),
                       planes=_with_slopes(_resize(lab, size)[0].cpu().numpy()) if same_aspect else None)

    @torch.inference_mode()
    def prepare(self, reference_lab: torch.Tensor) -> PropagateReference:
        return PropagateReference(reference_lab.to(self.device, torch.float32))

    @torch.inference_mode()
    def correspond(self, L: torch.Tensor, reference: PropagateReference) -> Correspondence:
        L = L.to(self.device, torch.float32)
        size = (L.shape[-2], L.shape[-1])
        ref = reference.fitted(size, self)
        # One frame at a time: a frame's result must not depend on which frames share
        # its batch (the filter promises the same bytes under any request order).
        labs, confidences = [], []
        for frame in L.split(1):
            lab, confidence = self._match(frame, ref)
            if ref.planes is not None:
                lab, confidence = self._add_direct(frame, ref.planes, lab, confidence)
            labs.append(lab)
            confidences.append(confidence)
        return Correspondence(lab=torch.cat(labs), confidence=torch.cat(confidences))

    def _match(self, L: torch.Tensor, ref: _Fitted) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptor matching of one frame [1, 1, h, w]: Lab [1, 3, h, w] and confidence [1, 1, h, w]."""
        m = match(descriptors(L, ref.stride), ref.descriptors, ref.cells, mode="wta",
                  chunk_bytes=self.chunk_bytes)
        similarity = ((m.similarity - self.similarity_floor) / (1.0 - self.similarity_floor)).clamp(0.0, 1.0)
        agreement = torch.exp(-_local_variance(m.values[:, 1:3]) / self.colour_spread**2)
        size = L.shape[-2:]
        cells = F.interpolate(m.values, size=size, mode="bilinear", align_corners=False)
        lab = torch.cat((cells[:, :1], follow_luma(cells[:, :3], cells[:, 3:], L)), 1)
        confidence = F.interpolate(similarity * agreement, size=size, mode="bilinear", align_corners=False)
        return lab, confidence

    def _add_direct(self, L: torch.Tensor, ref: np.ndarray, lab: torch.Tensor,
                    confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Merge the direct flow's colours into one frame's descriptor matches."""
        ab_d, c_d, _ = self._transfer(L[0, 0].cpu().numpy(), ref)
        c_d = torch.from_numpy(c_d * self._trust(c_d))[None, None].to(self.device)
        ab_d = torch.from_numpy(ab_d).unsqueeze(0).to(self.device)
        c_m = self.descriptor_weight * confidence
        ab = (ab_d * c_d + lab[:, 1:] * c_m) / (c_d + c_m).clamp(min=1e-12)
        return torch.cat((lab[:, :1], ab), 1), 1.0 - (1.0 - c_d) * (1.0 - c_m)

    def _transfer(self, L: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ab of ``source`` ([5, h, w] Lab and its slopes, see :func:`_with_slopes`) carried
        onto the frame ``L`` [h, w] along the flow between them, following its colour lines:
        ab [2, h, w], its confidence [h, w] (0..1, 0 where the flow leaves the image) and
        where it leaves [h, w] (bool)."""
        to_src = of.flow(L, source[0], self.flow_preset)
        to_cur = of.flow(source[0], L, self.flow_preset)
        warped, landed = of.warp_by_luma(source, to_src, L, self.warp_sigma)
        consistent = np.clip(2.0 - of.consistency(to_src, to_cur), 0.0, 1.0)
        luma_miss = np.maximum(np.abs(L - landed) - self.luma_tolerance, 0.0)
        confidence = consistent * np.exp(-(luma_miss / self.luma_tolerance) ** 2)
        outside = of.outside(to_src)
        confidence[outside] = 0.0
        return follow_luma(warped[:3], warped[3:], L), confidence, outside

    @torch.inference_mode()
    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        L_np = L[0, 0].float().cpu().numpy()
        ab = corr.lab[0, 1:].float().cpu().numpy()
        certainty = corr.confidence[0, 0].float().cpu().numpy()
        if last is not None:
            ab_prop, w_prop = self._propagate(L_np, last[0].float().cpu().numpy(), certainty)
            w_ref = self.reference_weight * certainty
            ab = (ab_prop * w_prop + ab * w_ref) / np.maximum(w_prop + w_ref, 1e-12)
            certainty = 1.0 - (1.0 - w_prop) * (1.0 - certainty)
        return torch.from_numpy(self._fuse(L_np, ab, certainty)).unsqueeze(0).to(self.device)

    def _trust(self, confidence: np.ndarray) -> float:
        """0..1 trust in a whole flow from its per-pixel ``confidence``: a flow that
        follows little of the frame joins different scenes, and what it carries where it
        happens to pass the checks is chance (see ``cut_coverage``)."""
        return min(1.0, max(0.0, float(confidence.mean()) / self.cut_coverage - 1.0))

    def _propagate(self, L: np.ndarray, last: np.ndarray, reference_confidence: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The previous output's ab [2, h, w] on this frame, and its weight [h, w] (0..1)."""
        ab, confidence, outside = self._transfer(L, _with_slopes(last))
        trust = self._trust(confidence)
        # Where the flow fails its checks it still lands near the right place more often
        # than not: its colour stays a weak guess where the reference knows no better.
        guess = np.where(outside, 0.0, self.flow_floor * (1.0 - reference_confidence))
        return ab, trust * np.maximum(confidence, guess)

    def _fuse(self, L: np.ndarray, ab: np.ndarray, certainty: np.ndarray) -> np.ndarray:
        """Edge-aware, confidence-weighted fill of ``ab`` [2, h, w] -> [2, h, w] float32."""
        a, b = ab * certainty
        stack = cv2.merge([a, b, certainty]).astype(np.float32)
        smooth = cv2.split(cv2.ximgproc.fastGlobalSmootherFilter(of.l_to_u8(L), stack, self.smooth_lambda,
                                                                  self.smooth_sigma))
        support = np.maximum(smooth[2], 0.0)
        filled = np.stack(smooth[:2]) / np.maximum(support, 1e-12)
        # Sure pixels keep their chroma untouched: any shrinking or blurring of them would
        # compound frame after frame through the recurrence. The unsure take it from their
        # surroundings, faded to neutral only where those are unsure too.
        keep = np.clip(certainty / self.keep_confidence, 0.0, 1.0)
        fade = np.clip(support / self.neutral_support, 0.0, 1.0)
        return (keep * ab + (1.0 - keep) * fade * filled).astype(np.float32)
