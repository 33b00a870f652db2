"""The correspondence subnet (the authors' ``WarpNet`` in ``nonlocal_net_iter_*.pth``).

It embeds VGG features of an image into a 256-channel map at a quarter of the image size;
:mod:`vsexcolor.backends.correspondence` matches the frame's embedding against the reference's.
The ``nn.Sequential`` indices are part of the checkpoint keys, so they must not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Channel norms are taken with Python's float epsilon, as the authors do.
EPS = 2.220446049250313e-16


def _conv_block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride), nn.InstanceNorm2d(cout), nn.PReLU()]


def _up() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convs with instance norm; one PReLU used twice."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.padding1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.bn1 = nn.InstanceNorm2d(channels)
        self.prelu = nn.PReLU()
        self.padding2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.bn2 = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.padding1(x))))
        out = self.bn2(self.conv2(self.padding2(out)))
        return self.prelu(out + x)


def channel_normalize(x: torch.Tensor) -> torch.Tensor:
    """Divide a [N, C, ...] tensor by its L2 norm over C at each position."""
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + EPS)


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Replicate-pad ``x`` evenly to h x w (the relu5_2 branch loses rows when H/16 is odd)."""
    dh, dw = h - x.shape[-2], w - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")


class WarpNet(nn.Module):
    """Feature embedding of the correspondence subnet.

    ``embed(relu2_2, relu3_2, relu4_2, relu5_2)`` takes VGG19 activations of one image
    (at 1/2, 1/4, 1/8, 1/16 of its size) and returns a [N, 256, H/4, W/4] map;
    ``theta`` (frame side) and ``phi`` (reference side) are the 1x1 projections that
    :func:`vsexcolor.correspondence.normalize_positions` then centres and normalises.
    """

    channels = 256

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.layer2_1 = nn.Sequential(*_conv_block(128, 128), *_conv_block(128, 64, stride=2), nn.Dropout(dropout))
        self.layer3_1 = nn.Sequential(*_conv_block(256, 128), *_conv_block(128, 64), nn.Dropout(dropout))
        self.layer4_1 = nn.Sequential(*_conv_block(512, 256), *_conv_block(256, 64), _up(), nn.Dropout(dropout))
        self.layer5_1 = nn.Sequential(
            *_conv_block(512, 256), _up(), *_conv_block(256, 64), _up(), nn.Dropout(dropout)
        )
        self.layer = nn.Sequential(*(ResidualBlock(self.channels) for _ in range(3)))
        self.theta = nn.Conv2d(self.channels, self.channels, 1)
        self.phi = nn.Conv2d(self.channels, self.channels, 1)

    def embed(self, relu2_2: torch.Tensor, relu3_2: torch.Tensor, relu4_2: torch.Tensor,
              relu5_2: torch.Tensor) -> torch.Tensor:
        f2 = self.layer2_1(channel_normalize(relu2_2))
        f3 = self.layer3_1(channel_normalize(relu3_2))
        f4 = self.layer4_1(channel_normalize(relu4_2))
        f5 = self.layer5_1(channel_normalize(relu5_2))
        h, w = f2.shape[-2:]
        return self.layer(torch.cat((f2, _pad_to(f3, h, w), _pad_to(f4, h, w), _pad_to(f5, h, w)), 1))
