"""The video discriminator of DEVC training (not part of the inference checkpoint).

It judges a pair of consecutive frames at once, so it can penalise flicker as well as
implausible colour. As in the paper: seven convolutions, the first six halving the
resolution, a self-attention block after the second, instance normalisation, and spectral
normalisation on every convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: Input channels: frame t as Lab, then frame t-1 as Lab (L 0..100, a and b raw CIE units).
IN_CHANNELS = 6
_HALVINGS = 6
_SLOPE = 0.2


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True) -> nn.Conv2d:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias))


class SelfAttention(nn.Module):
    """Self-attention over all positions of a [N, C, H, W] map (SAGAN): ``x + gamma * attend(x)``.

    ``gamma`` starts at 0, so the block starts as the identity and learns how much global
    context to mix in.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = _conv(channels, inner, 1)
        self.key = _conv(channels, inner, 1)
        self.value = _conv(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape

        def tokens(t: torch.Tensor) -> torch.Tensor:  # [N, C', H, W] -> [N, 1, HW, C']
            return t.flatten(2).transpose(1, 2).unsqueeze(1)

        # The fused kernel never materialises the HW x HW attention matrix on GPUs.
        out = F.scaled_dot_product_attention(tokens(self.query(x)), tokens(self.key(x)), tokens(self.value(x)))
        return x + self.gamma * out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)


class VideoDiscriminator(nn.Module):
    """Scores pairs of consecutive Lab frames: higher means "looks like a real colour video".

    Input [N, 6, H, W] (see :data:`IN_CHANNELS`) with H and W at least :attr:`min_size`.
    Output [N]: one unbounded score per pair (the average of a coarse score map).

    Args:
        width: channels of the first convolution; they double per halving after the second,
            as the authors' network does (64 -> 64, 128, 256, 512, 1024).
    """

    #: Six halvings must leave at least 2 x 2 positions for instance normalisation.
    min_size = 2 ** (_HALVINGS + 1)

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        channels = [width, width, 2 * width, 4 * width, 8 * width, 16 * width]
        self.conv1 = _conv(IN_CHANNELS, channels[0], 4, 2, 1)
        self.conv2 = _conv(channels[0], channels[1], 4, 2, 1)
        self.attention = SelfAttention(channels[1])
        self.halving = nn.ModuleList(_conv(cin, cout, 4, 2, 1) for cin, cout in zip(channels[1:], channels[2:]))
        # No bias: the relativistic GAN loss ignores a shift of all scores, so it would never learn.
        self.score = _conv(channels[-1], 1, 3, 1, 1, bias=False)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        if min(pair.shape[-2:]) < self.min_size:
            raise ValueError(f"VideoDiscriminator needs frames of at least {self.min_size}x{self.min_size} "
                             f"pixels (it halves them {_HALVINGS} times); got {tuple(pair.shape[-2:])}")
        x = F.leaky_relu(self.conv1(pair), _SLOPE)
        x = self.attention(F.leaky_relu(F.instance_norm(self.conv2(x)), _SLOPE))
        for conv in self.halving:
            x = F.leaky_relu(F.instance_norm(conv(x)), _SLOPE)
        return self.score(x).mean(dim=(1, 2, 3))
