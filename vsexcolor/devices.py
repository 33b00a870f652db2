"""Where torch work runs: the ``device`` setting shared by the filter and the commands."""
from __future__ import annotations

import torch


def parse_device(name: str, here: bool = True) -> torch.device:
    """``"auto"`` (CUDA when torch sees one, else the CPU), ``"cpu"`` or ``"cuda[:N]"`` -> a device.

    ``here``: the device must exist on this machine (False where it names one of another
    machine, as a render farm's driver does).

    Raises ValueError saying what is accepted, or that torch sees no CUDA device here.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    if here and device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"must be 'auto' or 'cpu' on this machine (torch sees no CUDA device), got {name!r}")
    return device
