"""The colorization subnet (the authors' ``ColorVidNet`` in ``colornet_iter_*.pth``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Input channels: frame L, warped a and b, confidence, previous frame L, a, b.
IN_CHANNELS = 7


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)


def _subsample(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 1, stride=2, bias=False, groups=channels)


def _up_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout))


class ColorVidNet(nn.Module):
    """U-Net that predicts ab for one frame.

    Input [N, 7, H, W] with H and W multiples of 8: L-50, warped a, warped b, confidence
    (cosine similarity, -1..1), previous L-50, previous a, previous b. Lab ab are raw CIE
    units. Output [N, 2, H, W]: ab in (-128, 128).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1_1 = nn.Sequential(_conv(IN_CHANNELS, 32), nn.ReLU(), _conv(32, 64))
        self.conv1_2 = _conv(64, 64)
        self.conv1_2norm_ss = _subsample(64)
        self.conv2_1 = _conv(64, 128)
        self.conv2_2 = _conv(128, 128)
        self.conv2_2norm_ss = _subsample(128)
        self.conv3_1 = _conv(128, 256)
        self.conv3_2 = _conv(256, 256)
        self.conv3_3 = _conv(256, 256)
        self.conv3_3norm_ss = _subsample(256)
        self.conv4_1 = _conv(256, 512)
        self.conv4_2 = _conv(512, 512)
        self.conv4_3 = _conv(512, 512)
        self.conv5_1 = _conv(512, 512, dilation=2)
        self.conv5_2 = _conv(512, 512, dilation=2)
        self.conv5_3 = _conv(512, 512, dilation=2)
        self.conv6_1 = _conv(512, 512, dilation=2)
        self.conv6_2 = _conv(512, 512, dilation=2)
        self.conv6_3 = _conv(512, 512, dilation=2)
        self.conv7_1 = _conv(512, 512)
        self.conv7_2 = _conv(512, 512)
        self.conv7_3 = _conv(512, 512)
        self.conv8_1 = _up_conv(512, 256)
        self.conv3_3_short = _conv(256, 256)
        self.conv8_2 = _conv(256, 256)
        self.conv8_3 = _conv(256, 256)
        self.conv9_1 = _up_conv(256, 128)
        self.conv2_2_short = _conv(128, 128)
        self.conv9_2 = _conv(128, 128)
        self.conv10_1 = _up_conv(128, 128)
        self.conv1_2_short = _conv(64, 128)
        self.conv10_2 = _conv(128, 128)
        self.conv10_ab = nn.Conv2d(128, 2, 1)

    @staticmethod
    def _relu_chain(x: torch.Tensor, *convs: nn.Module) -> torch.Tensor:
        for conv in convs:
            x = F.relu(conv(x))
        return F.instance_norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self._relu_chain(F.relu(self.conv1_1(x)), self.conv1_2)
        s2 = self._relu_chain(self.conv1_2norm_ss(s1), self.conv2_1, self.conv2_2)
        s3 = self._relu_chain(self.conv2_2norm_ss(s2), self.conv3_1, self.conv3_2, self.conv3_3)
        x = self._relu_chain(self.conv3_3norm_ss(s3), self.conv4_1, self.conv4_2, self.conv4_3)
        x = self._relu_chain(x, self.conv5_1, self.conv5_2, self.conv5_3)
        x = self._relu_chain(x, self.conv6_1, self.conv6_2, self.conv6_3)
        x = self._relu_chain(x, self.conv7_1, self.conv7_2, self.conv7_3)
        x = F.relu(self.conv8_1(x) + self.conv3_3_short(s3))
        x = self._relu_chain(x, self.conv8_2, self.conv8_3)
        x = F.relu(self.conv9_1(x) + self.conv2_2_short(s2))
        x = self._relu_chain(x, self.conv9_2)
        x = F.relu(self.conv10_1(x) + self.conv1_2_short(s1))
        x = F.leaky_relu(self.conv10_2(x), 0.2)
        return torch.tanh(self.conv10_ab(x)) * 128.0
