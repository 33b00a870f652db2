"""DDColor filled with the golden vectors' deterministic weights (no real checkpoint)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from unittest import mock

import torch

from detnets import detweights
from vsexcolor.models import DDColor

GOLDEN_COPY = Path(__file__).parent / "data" / "ddcolor-golden"
MODELS = ("tiny", "large")


def _load_module(name: str, path: Path, **extra_modules):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # ddcweights imports its random stream by the bare name ``detweights``.
    with mock.patch.dict(sys.modules, extra_modules):
        spec.loader.exec_module(module)
    return module


# The random stream is the DEVC vectors' own detweights.py (the golden README says so).
ddcweights = _load_module("ddcweights", GOLDEN_COPY / "ddcweights.py", detweights=detweights)


def keys(model: str) -> list[tuple[str, list[int]]]:
    """Every state-dict key of the authors' model (``tiny`` or ``large``) with its shape, in order."""
    return [(k, shape) for k, shape in json.loads((GOLDEN_COPY / f"keys_{model}.json").read_text())]


def golden_state_dict(model: str, seed: int) -> dict[str, torch.Tensor]:
    """The deterministic weights for ``model``; the tensors share memory with numpy's arrays."""
    return {k: torch.from_numpy(v) for k, v in ddcweights.state_dict_for(keys(model), seed).items()}


def ddcolor_with_golden_weights(model: str, seed: int) -> DDColor:
    """A DDColor in eval mode holding the deterministic weights of ``seed``, loaded strictly.

    Built on the meta device and filled by assignment, so the large model (about 0.9 GB of
    float32) exists once in memory, not twice.
    """
    with torch.device("meta"):
        net = DDColor(model)
    net.load_state_dict(golden_state_dict(model, seed), strict=True, assign=True)
    return net.eval()


def save_checkpoint(path: Path, model: str, seed: int, wrapped: bool) -> Path:
    """Write the deterministic weights as the authors' files do: ``{"params": sd}`` when
    ``wrapped``, else the bare state dict."""
    sd = golden_state_dict(model, seed)
    torch.save({"params": sd} if wrapped else sd, path)
    return path
