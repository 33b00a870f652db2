"""The networks compute what the authors' code computes (golden vectors, deterministic weights).

Tolerances are those of the golden README: float32 reorderings move single values a little,
and at temperature 1e-10 the warp's argmax may flip at near-ties.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vsexcolor.backends.base import Correspondence
from vsexcolor.backends.devc import OFFICIAL_TEMPERATURE, DevcBackend
from vsexcolor.color import L_CENTER, l_to_vgg_rgb, lab_to_rgb
from detnets import GOLDEN_COPY, case_meta, load_case, natural_lab, nets


def golden_dir() -> Path:
    if os.environ.get("VSEXCOLOR_GOLDEN_DIR"):
        return Path(os.environ["VSEXCOLOR_GOLDEN_DIR"])
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "devc-golden"
    return shared if shared.is_dir() else GOLDEN_COPY


CASES = sorted(golden_dir().glob("*.npz"))


def test_golden_folder_has_cases():
    assert CASES, f"no *.npz parity cases in {golden_dir()}"


class Case:
    def __init__(self, path: Path, chunk_bytes: int | None = None):
        meta, self.data, seeds = load_case(path)
        self.meta = meta
        temperature = meta["temperature"]
        # The official temperature is an argmax: run it through the chunked winner-take-all.
        mode = "wta" if temperature <= OFFICIAL_TEMPERATURE else "soft"
        kwargs = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
        self.backend = DevcBackend(*nets(seeds), mode=mode, temperature=temperature, **kwargs)

    def lab(self, key: str) -> torch.Tensor:
        """Golden network-space Lab (L centred) -> natural Lab, batched."""
        return natural_lab(self.data[key])

    def frame_L(self) -> torch.Tensor:
        return self.lab("frames_lab")[:, :1]


@pytest.fixture(params=CASES, ids=lambda p: p.stem)
def case(request) -> Case:
    return Case(request.param)


def test_parity_vgg_relu5_2(case: Case):
    vgg = case.backend.vgg
    with torch.no_grad():
        ref = vgg(lab_to_rgb(case.lab("reference_lab")))[-1][0]
        frame = vgg(l_to_vgg_rgb(case.frame_L()[:1]))[-1][0]
    for ours, key in ((ref, "reference_vgg_r52"), (frame, "frame0_vgg_r52")):
        golden = case.data[key]
        assert ours.shape == golden.shape
        err = (ours - golden).abs().max().item()
        assert err <= 1e-3 * golden.abs().max().item(), f"{key}: max |d| {err}"


def _check_warp(case: Case):
    ref = case.backend.prepare(case.lab("reference_lab"))
    corr = case.backend.correspond(case.frame_L(), ref)
    warped = torch.cat((corr.lab[:, :1] - L_CENTER, corr.lab[:, 1:]), 1)
    for ours, key in ((warped, "warped_lab"), (corr.confidence, "similarity")):
        golden = case.data[key]
        assert ours.shape == golden.shape
        close = ((ours - golden).abs() <= 0.05).float().mean().item()
        assert close >= 0.998, f"{key}: only {close:.4%} within 0.05"


def test_parity_warp(case: Case):
    _check_warp(case)


@pytest.mark.parametrize("path", [p for p in CASES
                                  if case_meta(p)["temperature"]
                                  <= OFFICIAL_TEMPERATURE], ids=lambda p: p.stem)
def test_parity_warp_small_chunks(path: Path):
    """The chunked winner-take-all gives the same answer with chunks of a few positions."""
    meta = case_meta(path)
    ref_positions = (meta["height"] // 4) * (meta["width"] // 4)
    rows = 7  # divides no grid width, so chunks start mid-row
    _check_warp(Case(path, chunk_bytes=rows * meta["frames"] * ref_positions * 4))


def test_parity_colornet(case: Case):
    L = case.frame_L()
    golden_ab = case.data["ab"]
    warped = case.lab("warped_lab")
    last = case.lab("reference_lab") if case.meta["init_last"] == "reference" else None
    for t in range(L.shape[0]):
        corr = Correspondence(lab=warped[t:t + 1], confidence=case.data["similarity"][t:t + 1])
        ab = case.backend.step(L[t:t + 1], corr, last)[0]
        d = (ab - golden_ab[t]).abs()
        assert d.max().item() <= 0.25 and d.mean().item() <= 0.01, \
            f"frame {t}: max {d.max().item():.4f}, mean {d.mean().item():.5f}"
        last = torch.cat((L[t:t + 1], golden_ab[t:t + 1]), 1)
