"""VGG19 convolutional trunk in the Caffe layout of the authors' ``data/vgg19_conv.pth``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Caffe's ImageNet mean in BGR order, as fractions of 255.
_BGR_MEAN = (0.40760392, 0.45795686, 0.48501961)

_STAGES = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))  # (stage, number of convs)
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

#: Layers the DEVC networks consume, in the order :meth:`VGG19Features.forward` returns them.
LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")


class VGG19Features(nn.Module):
    """VGG19 feature extractor with keys ``conv1_1.weight`` .. ``conv5_4.bias``.

    Input: sRGB in [0, 1], shape [N, 3, H, W]. Output: the activations named by ``LAYERS``
    (``relu1_2`` at H x W, then halving per stage; ``relu5_2`` at floor(H/16) x floor(W/16)).
    """

    def __init__(self) -> None:
        super().__init__()
        in_ch = 3
        for stage, n in _STAGES:
            for i in range(1, n + 1):
                self.add_module(f"conv{stage}_{i}", nn.Conv2d(in_ch, _CHANNELS[stage], 3, padding=1))
                in_ch = _CHANNELS[stage]
        self.register_buffer("bgr_mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """sRGB [0, 1] -> Caffe input: BGR, mean removed, scaled to 0..255."""
        return (rgb.flip(1) - self.bgr_mean.to(rgb.dtype)) * 255.0

    def forward(self, rgb: torch.Tensor, upto: str = "relu5_2") -> list[torch.Tensor]:
        """Return the ``LAYERS`` activations up to and including ``upto``."""
        x = self.preprocess(rgb)
        out: list[torch.Tensor] = []
        last = LAYERS.index(upto)
        for stage, n in _STAGES:
            if stage > 1:
                x = F.max_pool2d(x, 2, 2)
            for i in range(1, n + 1):
                x = F.relu(getattr(self, f"conv{stage}_{i}")(x))
                if i == 2:
                    out.append(x)
                    if len(out) > last:
                        return out
        return out
