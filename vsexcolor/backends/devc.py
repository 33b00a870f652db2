"""DEVC: VGG19 features + WarpNet correspondence + ColorVidNet, the authors' networks."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..color import L_CENTER, l_to_vgg_rgb, lab_to_rgb
from .correspondence import DEFAULT_CHUNK_BYTES, Mode, match
from ..models import ColorVidNet, VGG19Features, WarpNet
from .winograd import Winograd, available
from .base import Correspondence

#: The authors' inference temperature; at this value softmax is an argmax.
OFFICIAL_TEMPERATURE = 1e-10


@dataclass(frozen=True)
class DevcReference:
    embedding: torch.Tensor  # [1, 256, H'/4, W'/4], after phi
    pooled_lab: torch.Tensor  # [1, 3, H'/4, W'/4], L centred


def centre(lab: torch.Tensor) -> torch.Tensor:
    """Lab -> the networks' Lab (L - 50)."""
    return torch.cat((lab[:, :1] - L_CENTER, lab[:, 1:]), 1)


#: ColorVidNet's convolutions from its last encoder block on. The earlier ones' rounding is
#: amplified by the instance normalisations after them: on the golden inputs, Winograd in
#: these moves ab by 0.0002 units on average, in all of them by 0.009 (float32 noise: 0.0017).
_COLORNET_LATE = ("conv7_1", "conv7_2", "conv7_3", "conv8_1", "conv3_3_short", "conv8_2", "conv8_3", "conv9_1",
                  "conv2_2_short", "conv9_2", "conv10_1", "conv1_2_short", "conv10_2")


def _winograd(device: torch.device, dtype: torch.dtype, vgg: VGG19Features, warpnet: WarpNet,
              colornet: ColorVidNet) -> Winograd | None:
    """The Winograd mode for the layers where it pays and keeps the results, or None where
    NNPACK cannot serve (CUDA, half precision, a torch built without it)."""
    if device.type != "cpu" or dtype != torch.float32 or not available():
        return None
    # WarpNet's first layers gain nothing once split into single images; its residual blocks do.
    modules = [vgg, warpnet.layer, *(getattr(colornet, name) for name in _COLORNET_LATE)]
    return Winograd([p for m in modules for p in m.parameters() if p.dim() == 4])


class DevcBackend:
    """Runs the three networks; they must already hold their weights.

    Args:
        vgg, warpnet, colornet: the networks (moved to ``device`` and put in eval mode here).
        device: where to run.
        dtype: compute precision of the networks (float16 / bfloat16 on CUDA, float32 on CPU);
            matching and the fed-back state stay float32.
        mode: ``"wta"`` (the authors' inference) or ``"soft"`` matching.
        temperature: softmax temperature for ``"soft"``.
        chunk_bytes: memory bound of one similarity chunk.
    """

    name = "devc"
    multiple = 8
    output_smoothing = True

    def __init__(self, vgg: VGG19Features, warpnet: WarpNet, colornet: ColorVidNet, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 mode: Mode = "wta", temperature: float = 0.01,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        # cuDNN's half-precision kernels want NHWC; on the CPU oneDNN gains nothing from it.
        self._layout = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.vgg, self.warpnet, self.colornet = (
            m.to(self.device, dtype, memory_format=self._layout).eval().requires_grad_(False)
            for m in (vgg, warpnet, colornet))
        self.mode, self.temperature, self.chunk_bytes = mode, temperature, chunk_bytes
        self._winograd = _winograd(self.device, dtype, self.vgg, self.warpnet, self.colornet)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype).contiguous(memory_format=self._layout)

    def _embed(self, rgb: torch.Tensor) -> torch.Tensor:
        with self._winograd or nullcontext():
            return self.warpnet.embed(*self.vgg(self._input(rgb))[1:])

    @torch.inference_mode()
    def prepare(self, reference_lab: torch.Tensor) -> DevcReference:
        lab = reference_lab.to(self.device, torch.float32)
        embedding = self.warpnet.phi(self._embed(lab_to_rgb(lab)))
        return DevcReference(embedding=embedding, pooled_lab=F.avg_pool2d(centre(lab), 4))

    @torch.inference_mode()
    def correspond(self, L: torch.Tensor, reference: DevcReference) -> Correspondence:
        L = L.to(self.device, torch.float32)
        embedding = self.warpnet.theta(self._embed(l_to_vgg_rgb(L)))
        m = match(embedding.float(), reference.embedding.float(), reference.pooled_lab,
                  mode=self.mode, temperature=self.temperature, chunk_bytes=self.chunk_bytes)
        lab = F.interpolate(m.values, scale_factor=4, mode="nearest")
        lab = torch.cat((lab[:, :1] + L_CENTER, lab[:, 1:]), 1)
        return Correspondence(lab=lab, confidence=F.interpolate(m.similarity, scale_factor=4, mode="nearest"))

    @torch.inference_mode()
    def step(self, L: torch.Tensor, corr: Correspondence, last: torch.Tensor | None) -> torch.Tensor:
        L = L.to(self.device, torch.float32)
        last = torch.zeros((1, 3, *L.shape[-2:]), device=self.device) if last is None else centre(last)
        x = torch.cat((L - L_CENTER, corr.lab[:, 1:], corr.confidence, last), 1)
        with self._winograd or nullcontext():
            return self.colornet(self._input(x)).float().contiguous()
