"""The DEVC networks filled with the golden vectors' deterministic weights (no real checkpoint)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from vsexcolor.color import L_CENTER
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


def write_unpacked(folder: Path) -> Path:
    """``folder`` holding the deterministic weights in the official unpacked layout."""
    for name, state in state_dicts().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, folder / name)
    return folder


def nets(seeds: tuple[int, int, int] = (1, 2, 3)) -> tuple[VGG19Features, WarpNet, ColorVidNet]:
    modules = (VGG19Features(), WarpNet(), ColorVidNet())
    for module, sd in zip(modules, state_dicts(seeds).values()):
        module.load_state_dict(sd, strict=True)
        module.eval()
    return modules


def case_meta(path: Path) -> dict:
    """The metadata (``name.json``) of the golden case ``name.npz``."""
    return json.loads(path.with_suffix(".json").read_text())


def load_case(path: Path) -> tuple[dict, dict[str, torch.Tensor], tuple[int, int, int]]:
    """One golden case (``name.npz`` + ``name.json``): its metadata, its arrays as tensors,
    and the seeds of the deterministic weights it was made with (vgg, warpnet, colornet)."""
    meta = case_meta(path)
    data = {k: torch.from_numpy(v) for k, v in np.load(path.with_suffix(".npz")).items()}
    return meta, data, (meta["seed_vgg"], meta["seed_warpnet"], meta["seed_colornet"])


def natural_lab(x: torch.Tensor) -> torch.Tensor:
    """Golden network-space Lab (L centred) [3, H, W] or [N, 3, H, W] -> natural Lab, batched."""
    x = x.unsqueeze(0) if x.dim() == 3 else x
    return torch.cat((x[:, :1] + L_CENTER, x[:, 1:]), 1)
