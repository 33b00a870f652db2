"""``colorize()`` computes what the authors' loop computes: this test writes that loop out
plainly (one frame at a time: correspondence, then the colorization network fed the last
output, then chroma to full size and back to RGB) on the same deterministic networks, and
compares it with the filter's frames.

The networks' results depend on the shapes they run on (the recurrence amplifies a float
ulp into visible colour within a few frames under random weights), so the filter runs with
``batch=1``, the loop's shape; everything else is the filter's default path: its luma
conversion, internal size and padding, recurrence, scene handling, finish and formats.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import vapoursynth as vs

import vsexcolor
from clips import decode_rgb, sample_clip_path
from vsexcolor.backends.devc import DevcBackend
from vsexcolor.color import lab_to_rgb_fitted, rgb_to_lab

core = vs.core

W, H = 128, 80
PIXELS = 64 * 40  # half the size each way: the networks run at 64 x 40, multiples of 8


def rgbs_clip(frames: np.ndarray) -> vs.VideoNode:
    blank = core.std.BlankClip(format=vs.RGBS, width=W, height=H, length=len(frames), keep=True)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n, ..., p].astype(np.float32) / 255)
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def authors_loop(frames: np.ndarray, reference: np.ndarray, backend: DevcBackend) -> list[np.ndarray]:
    """float32 RGB [H, W, 3] per frame, computed the authors' way, frame after frame."""
    def lab(rgb: np.ndarray) -> torch.Tensor:
        return rgb_to_lab(torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None])

    h, w = 40, 64
    ref = F.interpolate(torch.from_numpy(reference.astype(np.float32) / 255).permute(2, 0, 1)[None],
                        size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    prepared = backend.prepare(rgb_to_lab(ref.clamp(0, 1)))
    last, out = None, []
    for rgb in frames:
        L_full = lab(rgb)[:, :1]
        L = F.interpolate(L_full, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        ab = backend.step(L, backend.correspond(L, prepared), last)
        last = torch.cat((L, ab), 1)
        ab_full = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)
        out.append(lab_to_rgb_fitted(torch.cat((L_full, ab_full), 1))[0].permute(1, 2, 0).numpy())
    return out


@pytest.mark.slow
def test_colorize_computes_the_authors_loop(devc_weights):
    import detnets

    frames = decode_rgb(sample_clip_path("bikes"), 6, (W, H))
    reference = decode_rgb(sample_clip_path("bikes"), 40, (W, H))[-1]
    expected = authors_loop(frames, reference, DevcBackend(*detnets.nets()))
    out = vsexcolor.colorize(rgbs_clip(frames), reference, backend="devc", weights=devc_weights, pixels=PIXELS,
                             smooth=0, batch=1)
    for n, frame in enumerate(out.frames()):
        got = np.stack([np.asarray(frame[p]) for p in range(3)], -1)
        # OpenCV's Lab -> sRGB in the filter's finish is within 4e-4 of the exact formula.
        assert np.abs(got - expected[n]).max() < 1e-3, n
        assert np.abs(got - got.mean(-1, keepdims=True)).max() > 0.05  # colour, not gray
