"""Spectral normalisation of the generator, and export of the plain weights it wraps.

The generator's convolutions are parametrized (``torch.nn.utils.parametrize``), which renames
their state-dict entries; :func:`plain_state_dict` evaluates the parametrizations and gives
back the keys of the plain networks, i.e. of the authors' checkpoint files.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

_MARK = "parametrizations."
_ORIGINAL = ".original"
_EPS = 1e-12
# Power iteration at construction: run until sigma changes by less than this fraction.
_INIT_TOLERANCE = 1e-6
_INIT_MAX_ITERATIONS = 50


class ScaledSpectralNorm(nn.Module):
    """Parametrization ``W -> scale * W / sigma(W)`` with ``scale`` fixed to sigma of the initial W.

    sigma is the largest singular value of W as a [out, in * kh * kw] matrix, estimated by
    power iteration: to convergence here, then one step per forward in training mode (the
    vectors are buffers, so checkpoints carry them). At construction the output therefore
    equals W; afterwards training can turn the weight but not change its largest singular
    value, the bound spectral normalisation exists to keep.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        matrix = weight.detach().flatten(1)
        # A fixed generator: building a model must not consume (or depend on) the global RNG.
        start = torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(0))
        u = F.normalize(start.to(matrix), dim=0, eps=_EPS)
        sigma = torch.zeros(())
        for _ in range(_INIT_MAX_ITERATIONS):
            v = F.normalize(matrix.t() @ u, dim=0, eps=_EPS)
            u = F.normalize(matrix @ v, dim=0, eps=_EPS)
            previous, sigma = sigma, torch.dot(u, matrix @ v)
            if abs(sigma - previous) <= _INIT_TOLERANCE * sigma:
                break
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        self.register_buffer("scale", sigma)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # In the weight's precision even under autocast: bf16 would jitter sigma by ~1e-3 every step.
        with torch.autocast(weight.device.type, enabled=False):
            matrix = weight.flatten(1)
            if self.training:
                with torch.no_grad():
                    self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=_EPS))
                    self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=_EPS))
            # Clones: the next forward updates the buffers in place while this graph still needs them.
            sigma = torch.dot(self.u.clone(), matrix @ self.v.clone())
            return weight * (self.scale / sigma)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Parametrize every ``Conv2d`` weight in ``module`` with :class:`ScaledSpectralNorm`, in place.

    The network computes what it did before (fine-tuning starts from the official network,
    not a rescaled one).
    """
    for conv in [m for m in module.modules() if isinstance(m, nn.Conv2d)]:
        parametrize.register_parametrization(conv, "weight", ScaledSpectralNorm(conv.weight))
    return module


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode for the block (no power-iteration step), then restore each submodule's mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def plain_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with each parametrized tensor evaluated under its plain name.

    The power-iteration vectors and scales are left out, so the result loads with
    ``strict=True`` into the same network built without parametrizations. Evaluation runs in
    eval mode, so exporting does not advance the power iteration (training stays reproducible).
    """
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad(), evaluating(module):
        for key, value in module.state_dict().items():
            owner, mark, rest = key.rpartition(_MARK)
            if not mark:
                out[key] = value.detach().clone()
            elif rest.endswith(_ORIGINAL):
                name = rest.removesuffix(_ORIGINAL)
                out[owner + name] = getattr(module.get_submodule(owner.rstrip(".")), name).detach().clone()
    return out
