"""A training run's files: its checkpoint (one dict: format, step, config, model and
optimiser states, scaler), written atomically and checked when resumed, and the weights
exported in the authors' layout (see :mod:`vsexcolor.train.trainer` for where they go)."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import ColorVidNet, VGG19Features, WarpNet
from ..weights.devc import VGG_FILE
from .config import TrainConfig
from .spectral import plain_state_dict

FORMAT = "vsexcolor-train-1"
_CHECKPOINT_KEYS = ("format", "step", "config", "model", "optimizer", "scaler")
#: The trained networks, as their states are named in a checkpoint.
NETS = ("warpnet", "colornet", "discriminator")


class CheckpointError(Exception):
    """A checkpoint cannot be read, does not fit, or cannot be written; the message says what to do."""


def export_weights(folder: Path, run: str, step: int, vgg: VGG19Features, warpnet: WarpNet,
                   colornet: ColorVidNet) -> None:
    """Write the networks in the authors' layout under ``folder``, with N = ``step``; drop older exports of ``run``.

    The colornet file goes first: :func:`vsexcolor.weights.devc.load_nets` only takes an N whose
    nonlocal_net file has a colornet file beside it, so a crash in between is harmless.
    """
    run_dir = folder / "checkpoints" / run
    run_dir.mkdir(parents=True, exist_ok=True)
    (folder / VGG_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(_on_cpu(vgg.state_dict()), folder / VGG_FILE)
    current = (f"colornet_iter_{step}.pth", f"nonlocal_net_iter_{step}.pth")
    save_atomic(_on_cpu(plain_state_dict(colornet)), run_dir / current[0])
    save_atomic(_on_cpu(plain_state_dict(warpnet)), run_dir / current[1])
    for old in run_dir.glob("*_iter_*.pth"):
        if old.name not in current:
            old.unlink()


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in state.items()}


def checkpoint_dict(step: int, config: TrainConfig, nets: tuple[nn.Module, ...], opt_g: torch.optim.Optimizer,
                opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "step": step,
        "config": config.to_dict(),
        "model": {name: net.state_dict() for name, net in zip(NETS, nets)},
        "optimizer": {"generator": opt_g.state_dict(), "discriminator": opt_d.state_dict()},
        "scaler": scaler.state_dict(),
    }


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``: ``path`` is always whole.

    Raises:
        CheckpointError: the disk is full (or another write error); ``path`` is unchanged.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(f"the disk is full: cannot write {path} (the previous file there is intact). "
                                  f"Free some space, then continue with --resume") from e
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def refuse_overwrite(checkpoint_path: Path) -> None:
    if checkpoint_path.exists():
        raise CheckpointError(f"{checkpoint_path} already exists: pass --resume to continue that run, "
                              f"or choose another out_dir")


def resume_state(path: Path, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to be ours and to fit ``config``'s networks."""
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist. Run without --resume to start training")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"cannot read the checkpoint {path} ({e}); it is damaged or not a checkpoint") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in _CHECKPOINT_KEYS):
        raise CheckpointError(f"{path} is not a vsexcolor training checkpoint (format {FORMAT}); exported or "
                              f"official weights go in init_weights, not in out_dir")
    saved, current = state["config"].get("model", {}), config.to_dict()["model"]
    if changed := sorted(k for k in current if saved.get(k) != current[k]):
        raise CheckpointError(f"{path} was made with different [model] settings ("
                              + ", ".join(f"{k}: {saved.get(k)!r} there, {current[k]!r} now" for k in changed)
                              + "); restore them to resume")
    return state


def load_states(state: dict[str, Any], path: Path, nets: tuple[nn.Module, ...], opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    try:
        for name, net in zip(NETS, nets):
            net.load_state_dict(state["model"][name], strict=True)
        opt_g.load_state_dict(state["optimizer"]["generator"])
        opt_d.load_state_dict(state["optimizer"]["discriminator"])
        scaler.load_state_dict(state["scaler"])
    except (KeyError, RuntimeError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path} does not fit the networks and optimisers of this config ({reason})") from e
