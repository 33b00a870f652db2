import sys
from pathlib import Path

import pytest
import torch

# Test helpers (detnets, clips) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

import detnets  # noqa: E402


@pytest.fixture(scope="session")
def devc_weights(tmp_path_factory) -> Path:
    """A folder in the official unpacked layout holding the deterministic test weights."""
    root = tmp_path_factory.mktemp("devc-weights")
    for name, state in detnets.state_dicts().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, root / name)
    return root
