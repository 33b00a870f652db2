"""DDColor computes what the authors' code computes (golden vectors, deterministic weights).

Tolerances are those of the golden README: float32 reorderings only.
"""
from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vsexcolor.models import DDColor
from ddcnets import GOLDEN_COPY, MODELS, ddcolor_with_golden_weights, keys


def golden_dir() -> Path:
    if os.environ.get("VSEXCOLOR_DDCOLOR_GOLDEN_DIR"):
        return Path(os.environ["VSEXCOLOR_DDCOLOR_GOLDEN_DIR"])
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "ddcolor-golden"
    return shared if shared.is_dir() else GOLDEN_COPY


CASES = sorted(golden_dir().glob("*.npz"))
FEATURES = tuple(f"feat_norm{k}" for k in range(4))


def test_ddcolor_golden_folder_has_cases():
    assert CASES, f"no *.npz DDColor parity cases in {golden_dir()}"


@pytest.mark.parametrize("model", MODELS)
def test_ddcolor_state_dict_matches_authors(model: str):
    net = DDColor(model)
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    del net
    assert ours == keys(model)


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.stem)
def run(request) -> tuple[dict, dict[str, np.ndarray]]:
    """One case's metadata and golden arrays, with our outputs under ``ours_<key>``.

    Module-scoped so that each case's network is built once; it is dropped before returning.
    """
    path: Path = request.param
    meta = json.loads(path.with_suffix(".json").read_text())
    with np.load(path) as npz:
        data = dict(npz)
    net = ddcolor_with_golden_weights(meta["model"], meta["seed"])
    x = torch.from_numpy(data["input_rgb"])[None]
    assert x.shape[-1] == meta["input_size"]
    with torch.no_grad():
        for key, feat in zip(FEATURES, net.features(x)):
            data[f"ours_{key}"] = feat[0].numpy()
        data["ours_ab"] = net(x)[0].numpy()
    del net
    gc.collect()
    return meta, data


@pytest.mark.parametrize("key", FEATURES)
def test_ddcolor_parity_features(run, key: str):
    _, data = run
    ours, golden = data[f"ours_{key}"], data[key]
    assert ours.shape == golden.shape
    err = np.abs(ours - golden).max()
    assert err <= 1e-4, f"{key}: max |d| {err:.3g}"


def test_ddcolor_parity_ab(run):
    _, data = run
    ours, golden = data["ours_ab"], data["ab"]
    assert ours.shape == golden.shape
    scale = np.abs(golden).max()
    d = np.abs(ours.astype(np.float64) - golden)
    assert d.max() <= 1e-4 * scale and d.mean() <= 1e-5 * scale, \
        f"ab: max |d| {d.max():.3g}, mean |d| {d.mean():.3g} (max |golden| {scale:.3g})"
