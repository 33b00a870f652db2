"""The output finish: internal ab and full-size L -> sRGB."""
from __future__ import annotations

import torch

from vsexcolor.color import lab_to_rgb_fitted
from vsexcolor.filter.postprocess import Finish, finish_rgb, full_resolution_ab
from vsexcolor.filter.resolution import Geometry


def test_the_cpu_finish_converts_as_the_exact_formula_and_fits_the_same_colours():
    # OpenCV converts on the CPU; the pixels it clips are done again exactly, so colours
    # outside the gamut are fitted as the formula fits them, and the rest agree
    # within the error of its curves (splines).
    gen = torch.Generator().manual_seed(0)
    geometry = Geometry.fit(96, 64, 48 * 32, 8)
    L = torch.rand(1, 1, 64, 96, generator=gen) * 100
    L[..., :2, :] = torch.tensor([0.0, 100.0]).view(2, 1)  # black and white rows: channels at 0 and 1
    ab = torch.randn(1, 2, geometry.padded_h, geometry.padded_w, generator=gen) * 40
    ab[..., :8, :] = 0  # gray, in gamut
    finish = Finish(saturation=1.3, smooth_lambda=0.0)
    exact = lab_to_rgb_fitted(torch.cat((L, full_resolution_ab(L, ab, geometry, finish)), 1))
    clipped = (exact <= 0) | (exact >= 1)

    rgb = finish_rgb(L, ab, geometry, finish)

    assert rgb.shape == exact.shape == (1, 3, 64, 96)
    assert 0.05 < clipped.any(1).float().mean() < 0.95  # both kinds of pixel are tried
    torch.testing.assert_close(rgb, exact, rtol=0, atol=4e-4)
    outside = clipped.any(1, keepdim=True).expand_as(rgb)
    torch.testing.assert_close(rgb[outside], exact[outside], rtol=0, atol=1e-6)
