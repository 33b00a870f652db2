"""Colour conversions between gamma-encoded sRGB, CIE XYZ and CIE Lab (D65), in torch.

Conventions, as in the authors' code: RGB is non-linear sRGB in [0, 1]; L is 0..100;
a and b are raw CIE units (roughly -128..127); colour channels are dimension -3, so every
function takes [..., 3, H, W] (or [..., 1, H, W] for single channels). The networks work
on L centred as L - 50 (:data:`L_CENTER`).
"""
from __future__ import annotations

import functools

import torch

#: The networks' L is CIE L* minus this.
L_CENTER = 50.0

# sRGB primaries to XYZ (D65), the matrix scikit-image uses.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0


@functools.lru_cache(maxsize=16)
def _matrices(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(XYZ from RGB, 1 / white, RGB from white-scaled XYZ) for ``dtype`` on ``device``.

    Made once per dtype and device: building and inverting small tensors costs more per
    call than converting a whole SD frame's worth of a channel.
    """
    xyz_from_rgb = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)
    white = torch.tensor(_WHITE, dtype=torch.float64)
    # Folding the white point into the inverse matrix saves a pass over every pixel.
    rgb_from_scaled_xyz = torch.linalg.inv(xyz_from_rgb) * white
    return tuple(m.to(device=device, dtype=dtype) for m in (xyz_from_rgb, 1.0 / white, rgb_from_scaled_xyz))


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel dimension (-3)."""
    # A plain matmul over flattened pixels; einsum is several times slower here.
    return torch.matmul(m, x.reshape(*x.shape[:-2], -1)).reshape(x.shape)


def srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    """sRGB transfer decode, [0, 1] -> linear [0, 1]."""
    return torch.where(v > 0.04045, ((v.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, v / 12.92)


def linear_to_srgb(v: torch.Tensor) -> torch.Tensor:
    """sRGB transfer encode, linear [0, 1] -> [0, 1]."""
    return torch.where(v > 0.0031308, 1.055 * v.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, v * 12.92)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA**3, t.clamp(min=_DELTA**3) ** (1 / 3), t / (3 * _DELTA**2) + 4.0 / 29.0)


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4.0 / 29.0))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB [..., 3, H, W] in [0, 1] -> Lab [..., 3, H, W] (L 0..100, raw a, b)."""
    xyz_from_rgb, inv_white, _ = _matrices(rgb.dtype, rgb.device)
    xyz = _apply(xyz_from_rgb, srgb_to_linear(rgb))
    fx, fy, fz = _f(xyz * inv_white.view(3, 1, 1)).unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), -3)


def _f_of_lab(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(f(X/Xn), f(Y/Yn), f(Z/Zn)) stacked on dimension -3 (inputs [..., H, W])."""
    fy = (L + 16.0) / 116.0
    # As in the authors' code, f(Z) is clamped at 0 before it is cubed, so deeply
    # saturated blues do not turn into negative light.
    return torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp(min=0)), -3)


def _linear_of_f(f: torch.Tensor) -> torch.Tensor:
    """Stacked f values (:func:`_f_of_lab`) -> linear RGB, same shape."""
    return _apply(_matrices(f.dtype, f.device)[2], _f_inv(f))


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    return _linear_of_f(_f_of_lab(*lab.unbind(-3)))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab [..., 3, H, W] -> sRGB [..., 3, H, W], each channel clipped to [0, 1]."""
    return linear_to_srgb(_lab_to_linear(lab).clamp(0.0, 1.0))


def _in_gamut(linear: torch.Tensor) -> torch.Tensor:
    """[3, P] linear RGB -> [P] bool: inside [0, 1] up to rounding."""
    return ((linear >= -1e-4) & (linear <= 1.0 + 1e-4)).all(dim=0)


def _fit(lab: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fitted Lab, its linear RGB), both [..., 3, H, W]; see :func:`fit_chroma`."""
    shape = lab.movedim(-3, 0).shape
    pixels = lab.movedim(-3, 0).reshape(3, -1)
    linear = _lab_to_linear(lab).movedim(-3, 0).reshape(3, -1)
    idx = (~_in_gamut(linear)).nonzero().squeeze(1)
    out = pixels
    if idx.numel():
        px = pixels[:, idx]
        # Only a and b scale, so f(Y) and the chroma terms of f are worked out once; each
        # bisection step is then a few passes over the out-of-gamut pixels alone.
        fy = (px[0] + 16.0) / 116.0
        da, db = px[1] / 500.0, px[2] / 200.0
        lo = torch.zeros_like(fy)
        hi = torch.ones_like(fy)
        for _ in range(steps):
            mid = (lo + hi) / 2
            f = torch.stack((fy + mid * da, fy, (fy - mid * db).clamp(min=0)))
            ok = _in_gamut(_linear_of_f(f.unsqueeze(-1)).squeeze(-1))
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        fitted = torch.cat((px[:1], px[1:] * lo), 0)
        out = pixels.index_copy(1, idx, fitted)
        linear = linear.index_copy(1, idx, _lab_to_linear(fitted.unsqueeze(-1)).squeeze(-1))
    return out.reshape(shape).movedim(0, -3), linear.reshape(shape).movedim(0, -3)


def fit_chroma(lab: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Scale each pixel's a, b towards 0 just enough for sRGB to hold the colour.

    Unlike clipping the RGB channels, this keeps L and the hue: the output's lightness
    stays the input's, and an out-of-gamut prediction loses saturation, not detail.
    The scale is found by bisection to within 2**-steps, for the pixels that need it.
    """
    return _fit(lab, steps)[0]


def lab_to_rgb_fitted(lab: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """``lab_to_rgb(fit_chroma(lab))`` with the whole-frame conversion done once: Lab
    [..., 3, H, W] -> sRGB [..., 3, H, W] in [0, 1], out-of-gamut colours desaturated."""
    return linear_to_srgb(_fit(lab, steps)[1].clamp(0.0, 1.0))


def gray_to_l(gray: torch.Tensor) -> torch.Tensor:
    """Gamma-encoded gray [0, 1] (R' = G' = B') -> CIE L* 0..100, same shape."""
    return 116.0 * _f(srgb_to_linear(gray)) - 16.0


def l_to_gray(L: torch.Tensor) -> torch.Tensor:
    """CIE L* 0..100 -> gamma-encoded gray [0, 1]; the inverse of :func:`gray_to_l`."""
    return linear_to_srgb(_f_inv((L + 16.0) / 116.0).clamp(0.0, 1.0))


def l_to_vgg_rgb(L: torch.Tensor) -> torch.Tensor:
    """L 0..100 [..., 1, H, W] -> the 3-channel VGG input the authors feed for gray frames.

    They pass L/100 on all three channels (not the sRGB gray of that L); the trained
    correspondence net expects exactly that.
    """
    return (L / 100.0).expand(*L.shape[:-3], 3, *L.shape[-2:])
