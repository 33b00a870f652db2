"""DDColor (Kang et al., ICCV 2023): automatic image colorization with dual decoders.

The modules reproduce the authors' released networks (``ddcolor_paper``, ``ddcolor_modelscope``,
``ddcolor_artistic`` with ConvNeXt-L, ``ddcolor_paper_tiny`` with ConvNeXt-T): their state dicts
load with ``strict=True``. Attribute names and container indices are checkpoint keys, so they
must not change. Inference only: call ``.eval()`` (BatchNorm uses its running statistics then),
and the spectral norms are never re-estimated.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .convnext import ConvNeXt

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Decoder settings shared by all released checkpoints.
NUM_QUERIES = 100
NUM_SCALES = 3
DEC_LAYERS = 9
HIDDEN = 256
HEADS = 8
FFN_DIM = 2048
PIXEL_DECODER_WIDTH = 512  # the UNet's output channels: 512, 512, then 512 // 2
OUTPUT_CHANNELS = 2

#: The network's side must be a multiple of this (ConvNeXt's coarsest stride).
STRIDE = 32


class SpectralConv2d(nn.Module):
    """Conv2d whose weight is divided by its stored spectral-norm estimate.

    Keys: ``bias`` (if any), ``weight_orig`` [out, in, k, k], buffers ``weight_u`` [out] and
    ``weight_v`` [in * k * k]. The effective weight is ``weight_orig / (u . (W v))`` with W
    the weight reshaped to [out, -1]: the checkpoint's u and v are used as they are (no power
    iteration), which is what the authors' networks compute in eval mode.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        # ``bias`` first: the checkpoints list it before ``weight_orig``.
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * kernel_size * kernel_size))
        self.padding = (kernel_size - 1) // 2
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight_orig)
        # A consistent (u, v) pair keeps sigma positive before a checkpoint is loaded.
        v = torch.ones_like(self.weight_v)
        self.weight_v.copy_(v / v.norm())
        u = self.weight_orig.flatten(1) @ self.weight_v
        self.weight_u.copy_(u / u.norm().clamp_min(1e-12))

    def weight(self) -> torch.Tensor:
        w = self.weight_orig
        # In float32: a half-precision dot product over thousands of terms loses the sigma.
        sigma = torch.dot(self.weight_u.float(), w.flatten(1).float() @ self.weight_v.float())
        return w / sigma.to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class PixelShuffleUp(nn.Module):
    """Upsampling by ``scale``: 1x1 spectral conv to cout * scale**2 channels (+ BatchNorm),
    ReLU, pixel shuffle, then a 2x2 box blur (against checkerboard artefacts).

    [N, cin, H, W] -> [N, cout, H * scale, W * scale].
    """

    def __init__(self, cin: int, cout: int, scale: int, batchnorm: bool) -> None:
        super().__init__()
        wide = cout * scale * scale
        layers: list[nn.Module] = [SpectralConv2d(cin, wide, 1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(wide))
        self.conv = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), self.scale)
        # Padding one row on top and one column on the left keeps the size under the 2x2 pool.
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class UnetBlock(nn.Module):
    """One pixel-decoder step: upsample ``x`` by 2, join the BatchNormed skip feature, 3x3 conv.

    ``x`` [N, cin, H, W] and ``skip`` [N, skip_channels, 2H, 2W] -> [N, cout, 2H, 2W].
    """

    def __init__(self, cin: int, skip_channels: int, cout: int) -> None:
        super().__init__()
        self.shuf = PixelShuffleUp(cin, cout, 2, batchnorm=True)
        self.bn = nn.BatchNorm2d(skip_channels)
        self.conv = nn.Sequential(SpectralConv2d(cout + skip_channels, cout, 3, bias=False),
                                  nn.ReLU(), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(torch.cat((self.shuf(x), self.bn(skip)), 1)))


class MultiheadAttention(nn.Module):
    """Multi-head attention on batch-first tokens [N, L, C], with ``nn.MultiheadAttention``'s keys
    (``in_proj_weight`` [3C, C] stacking the q, k, v projections, ``in_proj_bias``, ``out_proj``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        q = self._split(F.linear(query, wq, bq))
        k = self._split(F.linear(key, wk, bk))
        v = self._split(F.linear(value, wv, bv))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class CrossAttentionLayer(nn.Module):
    """Queries attend to one feature level; residual, then LayerNorm (post-norm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.multihead_attn = MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        return self.norm(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory))


class SelfAttentionLayer(nn.Module):
    """Queries attend to each other; residual, then LayerNorm (post-norm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt))


class FFNLayer(nn.Module):
    """Two-layer ReLU MLP; residual, then LayerNorm (post-norm)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, dim: int, hidden: int, out: int, num_layers: int) -> None:
        super().__init__()
        sizes = [dim] + [hidden] * (num_layers - 1) + [out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def sine_position_encoding(height: int, width: int, feats: int = HIDDEN // 2,
                           device: torch.device | None = None) -> torch.Tensor:
    """DETR's normalised sine position encoding of an height x width grid, [H * W, 2 * feats].

    Row positions fill the first ``feats`` channels, column positions the rest; positions are
    1..n scaled to (0, 2 pi], channel j has wavelength 10000 ** (2 * (j // 2) / feats) and
    takes the sine for even j, the cosine for odd j. float32, in row-major token order.
    """
    dim_t = 10000.0 ** (2 * (torch.arange(feats, device=device) // 2) / feats)
    even = (torch.arange(feats, device=device) % 2 == 0)

    def encode(n: int) -> torch.Tensor:
        # The 1e-6 is part of the trained models: positions are divided by (n + 1e-6).
        p = torch.arange(1, n + 1, dtype=torch.float32, device=device) / (n + 1e-6) * (2 * math.pi)
        angle = p[:, None] / dim_t
        return torch.where(even, angle.sin(), angle.cos())

    rows = encode(height)[:, None, :].expand(height, width, feats)
    cols = encode(width)[None, :, :].expand(height, width, feats)
    return torch.cat((rows, cols), -1).reshape(height * width, 2 * feats)


class ColorDecoder(nn.Module):
    """The colour decoder: learned colour queries refined against three pixel-decoder levels.

    ``forward(levels, pixels)``: ``levels`` are the UNet outputs (``in_channels`` channels, at
    1/16, 1/8 and 1/4 of the image side), ``pixels`` the [N, 256, S, S] full-size embedding.
    Returns [N, num_queries, S, S]: each query's colour embedding dotted with every pixel's.
    """

    def __init__(self, in_channels: tuple[int, ...] = (PIXEL_DECODER_WIDTH, PIXEL_DECODER_WIDTH,
                                                       PIXEL_DECODER_WIDTH // 2),
                 num_queries: int = NUM_QUERIES, dec_layers: int = DEC_LAYERS,
                 hidden: int = HIDDEN, heads: int = HEADS, ffn_dim: int = FFN_DIM) -> None:
        super().__init__()
        self.query_feat = nn.Embedding(num_queries, hidden)
        self.query_embed = nn.Embedding(num_queries, hidden)
        self.level_embed = nn.Embedding(len(in_channels), hidden)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, hidden, 1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden, heads) for _ in range(dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden, heads) for _ in range(dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden, ffn_dim) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden)
        self.color_embed = MLP(hidden, hidden, hidden, 3)

    def forward(self, levels: list[torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        memories, positions = [], []
        for i, feature in enumerate(levels):
            h, w = feature.shape[-2:]
            src = self.input_proj[i](feature).flatten(2).transpose(1, 2)
            memories.append(src + self.level_embed.weight[i])
            positions.append(sine_position_encoding(h, w, device=feature.device).to(feature.dtype))
        n = pixels.shape[0]
        query_pos = self.query_embed.weight.expand(n, -1, -1)
        out = self.query_feat.weight.expand(n, -1, -1)
        for i, (cross, self_attn, ffn) in enumerate(zip(self.transformer_cross_attention_layers,
                                                        self.transformer_self_attention_layers,
                                                        self.transformer_ffn_layers)):
            level = i % len(memories)  # coarse to fine, round robin
            out = cross(out, memories[level], positions[level], query_pos)
            out = ffn(self_attn(out, query_pos))
        colors = self.color_embed(self.decoder_norm(out))
        return torch.einsum("nqc,nchw->nqhw", colors, pixels)


class DualDecoder(nn.Module):
    """Pixel decoder (a UNet over the encoder maps) feeding the colour decoder.

    ``forward(feats)`` takes the four encoder maps (strides 4, 8, 16, 32) and returns
    [N, num_queries, S, S] per-query activation maps at the input size S.
    """

    def __init__(self, encoder_dims: tuple[int, ...]) -> None:
        super().__init__()
        wide, narrow = PIXEL_DECODER_WIDTH, PIXEL_DECODER_WIDTH // 2
        self.layers = nn.ModuleList([
            UnetBlock(encoder_dims[3], encoder_dims[2], wide),
            UnetBlock(wide, encoder_dims[1], wide),
            UnetBlock(wide, encoder_dims[0], narrow),
        ])
        self.last_shuf = PixelShuffleUp(narrow, narrow, 4, batchnorm=False)
        self.color_decoder = ColorDecoder((wide, wide, narrow))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out0 = self.layers[0](feats[3], feats[2])
        out1 = self.layers[1](out0, feats[1])
        out2 = self.layers[2](out1, feats[0])
        return self.color_decoder([out0, out1, out2], self.last_shuf(out2))


class ImageEncoder(nn.Module):
    """Holds the ConvNeXt under ``arch``, as the checkpoints' keys do."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.arch = ConvNeXt(variant)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.arch(x)


class DDColor(nn.Module):
    """The DDColor network with a ConvNeXt-T (``"tiny"``) or ConvNeXt-L (``"large"``) encoder.

    ``forward(x)``: x is a gray image batch in sRGB, [N, 3, H, W] in [0, 1] (the three channels
    equal; the authors feed the L* of the image back to sRGB), H and W multiples of 32 (the
    checkpoints were trained at 512 x 512; 256 also works). Returns the raw predicted chroma
    [N, 2, H, W]: CIE a* and b*, in the units of CIELAB, not clamped or squashed.
    """

    def __init__(self, encoder: Literal["tiny", "large"] = "large") -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = ImageEncoder(encoder)
        self.decoder = DualDecoder(self.encoder.arch.dims)
        self.refine_net = nn.Sequential(nn.Sequential(
            SpectralConv2d(NUM_QUERIES + 3, OUTPUT_CHANNELS, 1, bias=True)))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """sRGB [0, 1] -> ImageNet-normalised RGB, the encoder's input."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch [N, 3, H, W], got {tuple(x.shape)}")
        if x.shape[-2] % STRIDE or x.shape[-1] % STRIDE:
            raise ValueError(f"height and width must be multiples of {STRIDE}, got {tuple(x.shape[-2:])}")
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's four maps for sRGB ``x`` [N, 3, H, W] in [0, 1]: after ``norm0`` ..
        ``norm3``, [N, C_k, H / 2**(k+2), W / 2**(k+2)] (C = 96..768 tiny, 192..1536 large)."""
        return self.encoder(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        queries = self.decoder(self.encoder(x))
        # The refinement sees the normalised input beside the query maps, as in training.
        return self.refine_net(torch.cat((queries, x), 1))
