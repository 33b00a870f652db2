"""Colour conversions between gamma-encoded sRGB, CIE XYZ and CIE Lab (D65), in torch.

Conventions, as in the authors' code: RGB is non-linear sRGB in [0, 1]; L is 0..100;
a and b are raw CIE units (roughly -128..127); colour channels are dimension -3, so every
function takes [..., 3, H, W] (or [..., 1, H, W] for single channels). The networks work
on L centred as L - 50 (:data:`L_CENTER`).
"""
from __future__ import annotations

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


def _matrix(m, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(m, dtype=torch.float64).to(device=like.device, dtype=like.dtype)


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
    xyz = _apply(_matrix(_XYZ_FROM_RGB, rgb), srgb_to_linear(rgb))
    fx, fy, fz = _f(xyz / _matrix(_WHITE, rgb).view(3, 1, 1)).unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), -3)


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    # As in the authors' code, f(Z) is clamped at 0 before it is cubed, so deeply
    # saturated blues do not turn into negative light.
    f = torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp(min=0)), -3)
    xyz = _f_inv(f) * _matrix(_WHITE, lab).view(3, 1, 1)
    rgb_from_xyz = torch.linalg.inv(_matrix(_XYZ_FROM_RGB, lab).double()).to(lab.dtype)
    return _apply(rgb_from_xyz, xyz)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab [..., 3, H, W] -> sRGB [..., 3, H, W], each channel clipped to [0, 1]."""
    return linear_to_srgb(_lab_to_linear(lab).clamp(0.0, 1.0))


def _in_gamut(linear: torch.Tensor) -> torch.Tensor:
    """[3, P] linear RGB -> [P] bool: inside [0, 1] up to rounding."""
    return ((linear >= -1e-4) & (linear <= 1.0 + 1e-4)).all(dim=0)


def _fit(lab: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fitted Lab, its linear RGB), both [..., 3, H, W]; see :func:`fit_chroma`."""
    def linear_of(px: torch.Tensor) -> torch.Tensor:  # [3, P] Lab -> [3, P] linear RGB
        return _lab_to_linear(px.unsqueeze(-1)).squeeze(-1)

    shape = lab.movedim(-3, 0).shape
    pixels = lab.movedim(-3, 0).reshape(3, -1)
    linear = _lab_to_linear(lab).movedim(-3, 0).reshape(3, -1)
    idx = (~_in_gamut(linear)).nonzero().squeeze(1)
    out = pixels
    if idx.numel():
        out, linear = pixels.clone(), linear.clone()
        px = pixels[:, idx]
        lo = torch.zeros_like(px[0])
        hi = torch.ones_like(px[0])
        for _ in range(steps):
            mid = (lo + hi) / 2
            ok = _in_gamut(linear_of(torch.cat((px[:1], px[1:] * mid), 0)))
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        out[1:, idx] = px[1:] * lo
        linear[:, idx] = linear_of(out[:, idx])
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
