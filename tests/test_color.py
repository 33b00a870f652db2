"""Colour conversions agree with scikit-image, invert each other and carry gradients."""
from __future__ import annotations

import numpy as np
import torch
from skimage import color as skcolor

from vsexcolor.color import fit_chroma, gray_to_l, l_to_gray, lab_to_rgb, lab_to_rgb_fitted, rgb_to_lab


def random_rgb(seed: int = 0, shape=(2, 3, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rgb_to_lab_matches_skimage():
    rgb = random_rgb()
    ours = rgb_to_lab(rgb)
    ref = skcolor.rgb2lab(rgb.permute(0, 2, 3, 1).numpy())
    assert np.abs(ours.permute(0, 2, 3, 1).numpy() - ref).max() < 1e-3


def test_lab_to_rgb_matches_skimage_inside_the_gamut():
    lab = rgb_to_lab(random_rgb(1))
    ref = skcolor.lab2rgb(lab.permute(0, 2, 3, 1).numpy())
    assert np.abs(lab_to_rgb(lab).permute(0, 2, 3, 1).numpy() - ref).max() < 1e-4


def test_round_trips():
    rgb = random_rgb(2)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-6
    gray = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert (l_to_gray(gray_to_l(gray)) - gray).abs().max() < 1e-9


def test_gray_to_l_is_the_lightness_of_the_gray_colour():
    gray = torch.linspace(0, 1, 11, dtype=torch.float64)
    rgb = gray.view(1, 1, 1, 11).expand(1, 3, 1, 11)
    assert (gray_to_l(gray) - rgb_to_lab(rgb)[0, 0, 0]).abs().max() < 1e-9
    assert gray_to_l(torch.tensor([0.0, 1.0])).tolist() == [0.0, 100.0]


def test_conversions_carry_gradients():
    rgb = random_rgb(3, (1, 3, 4, 4)).clamp(0.05, 0.95).requires_grad_()
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,))
    lab = rgb_to_lab(random_rgb(4, (1, 3, 4, 4)).clamp(0.1, 0.9)).detach().requires_grad_()
    assert torch.autograd.gradcheck(lab_to_rgb, (lab,))


def test_fit_chroma_keeps_in_gamut_colours_and_the_lightness_and_hue_of_others():
    inside = rgb_to_lab(random_rgb(5))
    assert torch.equal(fit_chroma(inside), inside)
    wild = torch.stack((torch.full((8, 8), 60.0), torch.full((8, 8), 120.0), torch.full((8, 8), -90.0)))[None]
    fitted = fit_chroma(wild.double())
    assert torch.equal(fitted[:, 0], wild[:, 0].double())
    ratio = fitted[:, 1:] / wild[:, 1:]
    assert torch.allclose(ratio[:, 0], ratio[:, 1]) and (ratio < 1).all()  # same hue, less chroma
    assert (rgb_to_lab(lab_to_rgb(fitted))[:, 0] - 60.0).abs().max() < 0.1


def test_lab_to_rgb_fitted_is_the_conversion_of_the_fitted_colours():
    lab = rgb_to_lab(random_rgb(6, (1, 3, 16, 16)))
    lab[:, 1:, :8] *= 3.0  # half of the pixels pushed out of the gamut
    torch.testing.assert_close(lab_to_rgb_fitted(lab), lab_to_rgb(fit_chroma(lab)), rtol=0, atol=1e-6)
