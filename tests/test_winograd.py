"""The Winograd convolution mode computes what F.conv2d computes, for the layers it is given."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsexcolor.backends.winograd import Winograd, available

pytestmark = pytest.mark.skipif(not available(), reason="this torch build has no NNPACK")


def test_chosen_3x3_convolutions_match_conv2d_up_to_float32_rounding_and_others_pass_through():
    torch.manual_seed(0)
    x = torch.randn(3, 16, 24, 40)
    chosen, other = torch.randn(32, 16, 3, 3) / 12, torch.randn(32, 16, 3, 3) / 12
    bias = torch.randn(32)
    with Winograd([chosen]):
        fast = F.conv2d(x, chosen, bias, padding=1)
        passed = F.conv2d(x, other, bias, padding=1)
        strided = F.conv2d(x, chosen, bias, padding=1, stride=2)
    reference = F.conv2d(x, chosen, bias, padding=1)
    assert not torch.equal(fast, reference)  # other kernels ran
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)
    assert torch.equal(passed, F.conv2d(x, other, bias, padding=1))
    assert torch.equal(strided, F.conv2d(x, chosen, bias, padding=1, stride=2))


def test_an_image_gets_the_same_bytes_alone_or_in_a_batch():
    torch.manual_seed(1)
    x, w = torch.randn(4, 8, 20, 20), torch.randn(8, 8, 3, 3)
    with Winograd([w]):
        assert torch.equal(F.conv2d(x, w, padding=1)[2:3], F.conv2d(x[2:3], w, padding=1))
