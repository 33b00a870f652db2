"""Which backend a ``colorize`` node runs, decided without loading a network, so that a
planning build and the render it plans decide alike and planning loads no weights."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import vapoursynth as vs

from ..backends.base import Backend
from ..backends.devc import DevcBackend
from ..backends.propagate import PropagateBackend
from ..weights import ddcolor, devc
from .options import Options
from .recording import Fingerprint


@dataclass(frozen=True)
class BackendChoice:
    """The backend to run: ``name`` (``"devc"`` or ``"propagate"``), the SHA-256 of the DEVC
    weights it runs with (None for ``propagate``), and what the filter sizes by before any
    network exists: ``multiple`` (internal sides are multiples of it) and
    ``output_smoothing`` (see :class:`~vsexcolor.backends.base.Backend`)."""

    name: str
    weights_sha256: str | None
    multiple: int
    output_smoothing: bool


def choose_backend(options: Options) -> BackendChoice:
    """``devc`` where asked for or, with ``"auto"``, where the DEVC weights are found and
    readable; else ``propagate`` (with a warning for ``"auto"``). Reads the weights' files
    through for their digest, and loads nothing."""
    if options.backend != "propagate":
        try:
            digest = devc.fingerprint(options.weights)
        except devc.WeightsError as e:
            if options.backend == "devc":
                raise vs.Error(f"colorize: backend='devc' needs the authors' weights: {e}") from None
            warnings.warn(f"vsexcolor: using the weight-free 'propagate' backend, since DEVC has no weights: {e}",
                          stacklevel=3)
        else:
            return BackendChoice("devc", digest, DevcBackend.multiple, DevcBackend.output_smoothing)
    return BackendChoice("propagate", None, PropagateBackend.multiple, PropagateBackend.output_smoothing)


def build_backend(choice: BackendChoice, options: Options) -> Backend:
    """The chosen backend, its networks loaded onto ``options.device``."""
    if choice.name == "propagate":
        return PropagateBackend(device=options.device)
    try:
        nets = devc.load_nets(options.weights)
    except devc.WeightsError as e:
        # Found and readable when chosen, so damaged inside: a fallback here would render
        # other bytes than a planning build of the same call promised.
        raise vs.Error(f"colorize: the DEVC weights cannot be loaded: {e} (or pass backend='propagate')") from None
    if options.device.type == "cuda":
        # Same kernels in every process: no autotuning that may choose differently.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return DevcBackend(*nets, device=options.device, dtype=torch.float16 if options.fp16 else torch.float32)


def fingerprint(choice: BackendChoice, options: Options, keyframe_model: Path | None) -> Fingerprint:
    """What the node's bytes depend on beyond its arguments and input (see :class:`Fingerprint`)."""
    is_devc = choice.name == "devc"
    return Fingerprint(backend=choice.name, weights_sha256=choice.weights_sha256, device=options.device.type,
                       precision="float16" if is_devc and options.fp16 else "float32", torch=torch.__version__,
                       cpu_threads=torch.get_num_threads() if is_devc and options.device.type == "cpu" else None,
                       keyframe_sha256=ddcolor.fingerprint(keyframe_model) if keyframe_model else None)
