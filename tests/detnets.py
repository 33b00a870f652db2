"""The DEVC networks filled with the golden vectors' deterministic weights (no real checkpoint)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from vsexcolor.models import ColorVidNet, VGG19Features, WarpNet

GOLDEN_COPY = Path(__file__).parent / "data" / "devc-golden"
KEYS = json.loads((GOLDEN_COPY / "keys.json").read_text())
FILES = tuple(KEYS)  # vgg, nonlocal (warpnet), colornet: the official relative paths

_spec = importlib.util.spec_from_file_location("detweights", GOLDEN_COPY / "detweights.py")
detweights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(detweights)


def state_dicts(seeds: tuple[int, int, int] = (1, 2, 3)) -> dict[str, dict[str, torch.Tensor]]:
    """{official relative path: state dict} for the three checkpoint files."""
    return {
        name: {k: torch.from_numpy(v) for k, v in detweights.state_dict_for(KEYS[name], seed).items()}
        for name, seed in zip(FILES, seeds)
    }


def nets(seeds: tuple[int, int, int] = (1, 2, 3)) -> tuple[VGG19Features, WarpNet, ColorVidNet]:
    modules = (VGG19Features(), WarpNet(), ColorVidNet())
    for module, sd in zip(modules, state_dicts(seeds).values()):
        module.load_state_dict(sd, strict=True)
        module.eval()
    return modules
