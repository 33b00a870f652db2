"""3x3 convolutions on NNPACK's Winograd kernels, for single images on the CPU.

On AVX2 CPUs these take less CPU time than oneDNN's direct kernels for the DEVC networks,
one image at a time (benchmarks/README.md, "Where the time goes"); NNPACK's batched path
is slower than oneDNN, so batches are split. Results differ from oneDNN's by float32
rounding (about 1e-5 relative per layer). NNPACK is reached through ``torch._nnpack_spatial_convolution``, a private torch op:
where a torch build lacks it (:func:`available`), the DEVC backend does without.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def available() -> bool:
    """Whether this torch has NNPACK and the op, and NNPACK initialises on this CPU."""
    # _nnpack_available() also initialises NNPACK, which its convolution needs first.
    check = getattr(torch, "_nnpack_available", None)
    return check is not None and hasattr(torch, "_nnpack_spatial_convolution") and bool(check())


def _pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Winograd(TorchFunctionMode):
    """While active, computes the 3x3 float32 CPU convolutions of chosen weights with
    NNPACK's Winograd kernels, image by image; every other call passes through unchanged.

    Args:
        weights: the convolution weights whose calls it may take over.
    """

    def __init__(self, weights: list[torch.Tensor]) -> None:
        super().__init__()
        # By identity: the modules hand their own parameter objects to F.conv2d.
        self._weights = {id(w) for w in weights}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            out = self._conv2d(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    def _conv2d(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                dilation: int | tuple[int, int] = 1, groups: int = 1) -> torch.Tensor | None:
        if (id(weight) not in self._weights or input.dim() != 4 or input.device.type != "cpu"
                or input.dtype != torch.float32 or weight.shape[-2:] != (3, 3) or groups != 1
                or isinstance(padding, str) or _pair(stride) != (1, 1) or _pair(dilation) != (1, 1)):
            return None
        out = [torch._nnpack_spatial_convolution(x, weight, bias, _pair(padding)) for x in input.split(1)]
        return out[0] if len(out) == 1 else torch.cat(out)
