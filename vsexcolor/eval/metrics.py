"""Fidelity, colourfulness and temporal-stability metrics of colorized frames.

Frames are numpy RGB [H, W, 3], gamma-encoded sRGB, float in [0, 1] (the fidelity metrics
take the output first and the ground truth second). Library implementations are used where
they exist: scikit-image for PSNR, SSIM and CIEDE2000, OpenCV DIS (via :mod:`vsexcolor.backends.flow`)
for the flow of the warp error.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..backends import flow as of
from ..filter.reference import image_lab

#: Frame distances of the colour distribution consistency (Liu et al., "Temporally consistent
#: video colorization with deep feature propagation and self-regularization learning").
CDC_DISTANCES = (1, 2, 4)


def psnr(out: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels; infinite for identical frames."""
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(truth, out, data_range=1.0))


def ssim(out: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over the three channels (scikit-image's defaults: 7x7 uniform window); 1 at best."""
    return float(structural_similarity(truth, out, data_range=1.0, channel_axis=-1))


def ciede2000(out: np.ndarray, truth: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference (D65 Lab units); 0 for identical frames."""
    truth_lab, out_lab = (image_lab(x).movedim(-3, -1).numpy() for x in (truth, out))
    return float(np.mean(deltaE_ciede2000(truth_lab, out_lab)))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness M (2003) on the 0..255 scale; 0 for gray."""
    x = rgb.astype(np.float64) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def channel_histograms(rgb: np.ndarray, bins: int = 256) -> np.ndarray:
    """[3, bins] normalised histograms of the R, G and B values over [0, 1]."""
    h = np.stack([np.histogram(rgb[..., c], bins=bins, range=(0.0, 1.0))[0] for c in range(3)])
    return h / h.sum(-1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits (0..1) of distributions along the last axis."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


def cdc(histograms: Sequence[np.ndarray] | np.ndarray,
        distances: Sequence[int] = CDC_DISTANCES) -> float:
    """Colour distribution consistency of a clip: lower is steadier, 0 for a still one.

    ``histograms``: per frame, the [3, bins] output of :func:`channel_histograms`. For each
    distance d, the JS divergence between frames t and t + d is averaged over channels and
    frames; the result is the mean over the distances a clip is long enough for.
    """
    h = np.asarray(histograms)
    usable = [d for d in distances if d < len(h)]
    if not usable:
        raise ValueError(f"cdc: {len(h)} frame(s) is too short for distances {tuple(distances)}")
    return float(np.mean([js_divergence(h[:-d], h[d:]).mean() for d in usable]))


def warp_error(prev_out: np.ndarray, out: np.ndarray, to_prev: np.ndarray, valid: np.ndarray) -> float:
    """Mean squared RGB difference between ``out`` and ``prev_out`` warped onto it.

    ``to_prev`` is the backward flow [H, W, 2] from this frame to the previous one (taken on
    the ground truth, so all methods are measured along the same motion) and ``valid`` the
    [H, W] mask of pixels that flow is trusted at (see :func:`motion`). Lai et al. (ECCV 2018)
    average this over a clip's frame pairs; 0 is perfectly stable.
    """
    if not valid.any():
        return 0.0
    diff = out - of.warp(prev_out, to_prev)
    return float((diff[valid] ** 2).sum(-1).mean())


def motion(prev_L: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow [H, W, 2] from frame L to frame prev_L (both [H, W], 0..100) and the
    [H, W] bool mask where it is forward-backward consistent and stays inside the image."""
    to_prev = of.flow(L, prev_L)
    valid = (of.consistency(to_prev, of.flow(prev_L, L)) < 1.0) & ~of.outside(to_prev)
    return to_prev, valid
