"""ConvNeXt (Liu et al., CVPR 2022) as the DDColor encoder, with the key layout of its checkpoints.

The attribute names (``downsample_layers``, ``stages``, ``norm0`` .. ``norm3``, ``norm``) and the
``nn.Sequential`` indices are part of the checkpoint keys, so they must not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: (blocks per stage, channels per stage) of the two encoders DDColor ships.
VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}

EPS = 1e-6


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [N, C, H, W] map (keys ``weight``, ``bias``)."""

    def __init__(self, channels: int, eps: float = EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.layer_norm accumulates in float32 even for half inputs, unlike a hand-written mean.
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    """Residual block: 7x7 depthwise conv, LayerNorm, MLP with 4x expansion, scaled by ``gamma``.

    Shape-preserving: [N, C, H, W] -> [N, C, H, W].
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        # Layer scale; the checkpoints store it as a bare parameter of the block.
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The MLP runs channels-last so that its 1x1 convolutions are plain Linear layers.
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.pwconv2(F.gelu(self.pwconv1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt trunk returning the four stage outputs, each through its own LayerNorm.

    Input: [N, 3, H, W] (DDColor feeds ImageNet-normalised RGB), H and W multiples of 32.
    Output: four maps, [N, dims[k], H / 2**(k+2), W / 2**(k+2)] for k = 0..3, i.e. strides
    4, 8, 16, 32, taken after ``norm0`` .. ``norm3``.
    """

    def __init__(self, variant: str = "large") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ConvNeXt variant {variant!r}; expected one of {sorted(VARIANTS)}")
        depths, dims = VARIANTS[variant]
        self.dims = dims
        stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.downsample_layers = nn.ModuleList(
            [stem] + [nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
                      for i in range(3)]
        )
        self.stages = nn.ModuleList(nn.Sequential(*(Block(dim) for _ in range(depth)))
                                    for depth, dim in zip(depths, dims))
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", LayerNorm2d(dim))
        # The classifier's final norm: in every checkpoint, but colorization never uses it.
        self.norm = nn.LayerNorm(dims[-1], eps=EPS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            # The normed map is a side output only: the next stage continues from the raw one,
            # as in the authors' code (their norms are read through forward hooks).
            out.append(getattr(self, f"norm{i}")(x))
        return out
