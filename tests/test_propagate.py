"""The weight-free backend and its optical-flow helpers on small synthetic frames, and the
filter with it on real footage.

Frames are crops of textured canvases whose colour regions follow the texture, so flow and
descriptors have something to hold on to; tolerances are in CIE ab units (the colours used
are 40-60 units from neutral).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import vapoursynth as vs
from clips import decode_rgb, rgb_clip, sample_clip_path

import vsexcolor
from vsexcolor.backends import flow as of
from vsexcolor.backends.base import Backend
from vsexcolor.backends.propagate import SLOPE_LIMIT, PropagateBackend, descriptors, luma_slopes
from vsexcolor.backends.correspondence import match
from vsexcolor.eval.metrics import psnr


def smooth_noise(h: int, w: int, sigma: float, seed: int) -> np.ndarray:
    """Smooth random field [h, w] scaled to 0..1."""
    x = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)).astype(np.float32), (0, 0), sigma)
    return (x - x.min()) / (x.max() - x.min())


def canvas(h: int, w: int, seed: int) -> np.ndarray:
    """Lab [3, h, w]: textured L (20..80) and two smooth colour fields (about +-40)."""
    L = 20.0 + 60.0 * smooth_noise(h, w, 1.5, seed)
    a = 80.0 * smooth_noise(h, w, 8.0, seed + 1) - 40.0
    b = 80.0 * smooth_noise(h, w, 8.0, seed + 2) - 40.0
    return np.stack((L, a, b)).astype(np.float32)


def lab_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(0)


def run(backend: Backend, frames: list[np.ndarray], reference: np.ndarray,
        initial: np.ndarray | None) -> list[np.ndarray]:
    """Drive a backend over Lab frames ([3, h, w], only L is used) as the engine does; ab outputs."""
    prepared = backend.prepare(lab_tensor(reference))
    L = torch.stack([torch.from_numpy(f[:1]) for f in frames])
    corr = backend.correspond(L, prepared)
    last = None if initial is None else lab_tensor(initial)
    out = []
    for i in range(len(frames)):
        ab = backend.step(L[i:i + 1], corr[i], last)
        last = torch.cat((L[i:i + 1], ab), 1)
        out.append(ab[0].cpu().numpy())
    return out


H, W = 64, 96


# --- optical flow helpers --------------------------------------------------------------

def test_flow_recovers_a_translation_and_is_consistent_both_ways():
    big = canvas(H + 16, W + 16, seed=0)[0]
    prev, cur = big[4:4 + H, 4:4 + W], big[7:7 + H, 6:6 + W]  # content moves 2 left, 3 up
    to_prev = of.flow(cur, prev)
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(to_prev[inner][..., 0]) == pytest.approx(2.0, abs=0.1)
    assert np.median(to_prev[inner][..., 1]) == pytest.approx(3.0, abs=0.1)
    assert (of.consistency(to_prev, of.flow(prev, cur))[inner] < 1.0).mean() > 0.95
    # Warping the previous frame along the flow reproduces the current one.
    assert np.abs(of.warp(prev, to_prev) - cur)[inner].mean() < 1.0


def test_warp_with_an_integer_flow_shifts_and_outside_marks_what_leaves():
    img = canvas(H, W, seed=1)[0]
    shift = np.zeros((H, W, 2), np.float32)
    shift[..., 0] = 5.0
    np.testing.assert_array_equal(of.warp(img, shift)[:, :-5], img[:, 5:])
    leaves = of.outside(shift)
    assert leaves[:, -5:].all() and not leaves[:, :-5].any()


def test_a_sample_landing_on_an_edge_takes_the_side_its_pixel_looks_like():
    # Dark red on the left, light blue on the right; every pixel samples half a pixel to
    # its right, so the last dark column lands midway between the two sides.
    planes = np.zeros((3, H, W), np.float32)
    planes[:, :, :W // 2] = np.reshape((30.0, 40.0, 20.0), (3, 1, 1))
    planes[:, :, W // 2:] = np.reshape((70.0, -10.0, -30.0), (3, 1, 1))
    half = np.zeros((H, W, 2), np.float32)
    half[..., 0] = 0.5
    warped, landed = of.warp_by_luma(planes, half, planes[0], sigma=2.0)
    edge = W // 2 - 1
    np.testing.assert_allclose(warped[:, :, edge], planes[:, :, edge], atol=1e-3)
    # The L it lands on is the plain bilinear mix, which tells the flow's checks of the miss.
    np.testing.assert_allclose(landed[:, edge], 50.0)
    np.testing.assert_allclose(landed[:, :-1], of.warp(planes[0], half)[:, :-1], atol=0.05)
    # Away from edges the weighted warp is the plain bilinear one.
    bilinear = of.warp(planes.transpose(1, 2, 0), half).transpose(2, 0, 1)
    np.testing.assert_allclose(warped[:, :, :edge], bilinear[:, :, :edge], atol=0.05)


def test_a_luma_weighted_warp_with_no_close_neighbour_falls_back_to_bilinear():
    # Tall enough to be warped in several blocks of rows.
    h = 3 * H
    planes = canvas(h, W, seed=3)
    motion = np.random.default_rng(3).normal(0.0, 3.0, (h, W, 2)).astype(np.float32)
    warped, landed = of.warp_by_luma(planes, motion, np.full((h, W), 1000.0, np.float32), sigma=2.0)
    # OpenCV's bilinear weights are rounded to 1/32 of a pixel.
    tolerance = max(np.abs(np.diff(planes, axis=axis)).max() for axis in (-1, -2)) / 32
    bilinear = of.warp(planes.transpose(1, 2, 0), motion).transpose(2, 0, 1)
    np.testing.assert_allclose(warped, bilinear, atol=tolerance)
    np.testing.assert_allclose(landed, bilinear[0], atol=tolerance)


def test_flow_rejects_frames_of_different_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        of.flow(np.zeros((8, 8), np.float32), np.zeros((8, 9), np.float32))


# --- descriptors -----------------------------------------------------------------------

def test_descriptors_find_a_known_shifted_patch():
    ref = canvas(H, W, seed=2)[:1]
    frame = canvas(H, W, seed=3)[:1].copy()
    # A 40x40 patch of the reference, moved by (+8, +32) pixels into an unrelated frame.
    frame[:, 16:56, 40:80] = ref[:, 8:48, 8:48]
    stride = 4
    d_ref = descriptors(torch.from_numpy(ref)[None], stride)
    d_frame = descriptors(torch.from_numpy(frame)[None], stride)
    ys, xs = torch.meshgrid(torch.arange(H // stride), torch.arange(W // stride), indexing="ij")
    coords = torch.stack((ys, xs)).float()[None]
    found = match(d_frame, d_ref, coords).values[0]
    # Cells well inside the patch (away from its unrelated surroundings) map back by (-2, -8) cells.
    cy, cx = ys[7:11, 13:17], xs[7:11, 13:17]
    assert (found[0, 7:11, 13:17] == cy - 2).all()
    assert (found[1, 7:11, 13:17] == cx - 8).all()


def test_descriptors_ignore_a_brightness_offset_between_frame_and_reference():
    L = torch.from_numpy(canvas(H, W, seed=4)[:1])[None]
    stride = 8
    ys, xs = torch.meshgrid(torch.arange(H // stride), torch.arange(W // stride), indexing="ij")
    coords = torch.stack((ys, xs)).float()[None]
    found = match(descriptors(L + 10.0, stride), descriptors(L, stride), coords).values[0]
    assert (found[0] == ys).float().mean() > 0.9 and (found[1] == xs).float().mean() > 0.9


# --- the backend -----------------------------------------------------------------------

def _colour_line_image(slope: float, seed: int) -> np.ndarray:
    """Lab [3, H, W]: L rough noise (20..80), a = 10 + slope * (L - 50), b constant."""
    L = 20.0 + 60.0 * np.random.default_rng(seed).random((H, W)).astype(np.float32)
    return np.stack((L, 10.0 + slope * (L - 50.0), np.full_like(L, -30.0))).astype(np.float32)


def test_colour_slopes_recover_how_chroma_varies_with_luma_and_are_zero_where_flat():
    slopes = luma_slopes(_colour_line_image(0.8, seed=20))
    # The regularisation shrinks slopes a little where the L variance is only this large.
    assert 0.6 < slopes[0].mean() < 0.8 and slopes[0].std() < 0.05
    assert np.abs(slopes[1]).max() < 1e-4  # b does not vary with L
    # L varying by noise alone (half an L unit): not structure to follow, whatever a does.
    flat = _colour_line_image(0.8, seed=20)
    flat[0] = 50.0 + 0.5 * np.random.default_rng(1).random((H, W))
    flat[1] = 10.0 + 0.8 * (flat[0] - 50.0)
    assert np.abs(luma_slopes(flat)).max() < 0.01
    assert np.abs(luma_slopes(_colour_line_image(10.0, seed=20))).max() <= SLOPE_LIMIT


def test_a_carried_colour_follows_the_luminance_of_the_pixel_it_lands_on():
    # The frame is the previous one brightened by 4 L units (within the flow's luma
    # tolerance). Its colour varies with L at 0.8 ab per L unit, so the right a is 3.2 above
    # the previous frame's; a plain warp would keep the previous a.
    before = _colour_line_image(0.8, seed=21)
    after = before.copy()
    after[0] += 4.0
    out = run(PropagateBackend(), [after], canvas(H, W, seed=22), initial=before)[0]
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(out[0] - (before[1] + 3.2))[inner].mean() < 1.0
    assert np.abs(out[1] - before[2])[inner].mean() < 1.0


def test_backend_meets_the_protocol_shapes():
    backend = PropagateBackend()
    frames = [canvas(H, W, seed=5)] * 3
    prepared = backend.prepare(lab_tensor(canvas(48, 80, seed=6)))  # another size and aspect
    corr = backend.correspond(torch.stack([torch.from_numpy(f[:1]) for f in frames]), prepared)
    assert corr.lab.shape == (3, 3, H, W) and corr.confidence.shape == (3, 1, H, W)
    assert corr.confidence.min() >= 0.0 and corr.confidence.max() <= 1.0
    ab = backend.step(torch.from_numpy(frames[0][:1])[None], corr[0], None)
    assert ab.shape == (1, 2, H, W) and ab.dtype == torch.float32 and torch.isfinite(ab).all()


def test_a_translated_textured_pattern_keeps_its_colours():
    big = canvas(H + 32, W + 32, seed=7)
    frames = [big[:, 4 + t:4 + t + H, 4 + 2 * t:4 + 2 * t + W] for t in range(8)]
    # The reference is unrelated: the colours can only come from the initial state.
    out = run(PropagateBackend(), frames, canvas(H, W, seed=8), initial=frames[0])
    inner = (slice(None), slice(10, -10), slice(20, -20))
    for t in (1, 4, 7):
        err = np.abs(out[t] - frames[t][1:])[inner]
        assert err.mean() < 2.0, (t, err.mean())


def _object_scene(x: int | None) -> np.ndarray:
    """A static textured background, orange but for a green patch at rows 20..43, columns
    20..43, and a blue textured 24x24 square at rows 20..43, column x.. (none if x is None)."""
    lab = np.empty((3, H, W), np.float32)
    lab[0] = 30.0 + 40.0 * smooth_noise(H, W, 1.5, seed=9)
    lab[1], lab[2] = 20.0, 50.0
    lab[1:, 20:44, 20:44] = np.array([-40.0, 40.0])[:, None, None]
    if x is not None:
        square = (slice(20, 44), slice(x, x + 24))
        lab[0][square] = 50.0 + 40.0 * smooth_noise(24, 24, 1.5, seed=10)
        lab[1][square], lab[2][square] = 10.0, -50.0
    return lab


def test_a_disoccluded_region_takes_the_reference_colour():
    # Frame 0 hides the green patch under the square; frame 1 moves the square 8 pixels
    # right and reveals part of it. Only the reference (no square) knows it is green.
    before, after = _object_scene(20), _object_scene(28)
    out = run(PropagateBackend(), [after], _object_scene(None), initial=before)[0]
    green, orange, blue = np.array([-40.0, 40.0]), np.array([20.0, 50.0]), np.array([10.0, -50.0])
    revealed = out[:, 24:40, 21:27].mean((1, 2))
    # Mostly the reference's green; the flow's checks miss a pixel or two at the edge.
    assert np.linalg.norm(revealed - green) < 0.25 * np.linalg.norm(orange - green)
    # The square itself is not in the reference: it keeps its propagated blue.
    assert np.linalg.norm(out[:, 24:40, 32:48].mean((1, 2)) - blue) < 5.0


def test_a_scene_start_without_state_takes_the_reference_colours():
    scene = canvas(H, W, seed=11)
    out = run(PropagateBackend(), [scene], scene, initial=None)[0]
    assert np.abs(out - scene[1:]).mean() < 2.0


def test_after_a_cut_the_old_colours_fade_instead_of_spreading():
    colourful = canvas(H, W, seed=12)
    unrelated = canvas(H, W, seed=13)
    neutral_ref = canvas(H, W, seed=14)
    neutral_ref[1:] = 0.0
    out = run(PropagateBackend(), [unrelated], neutral_ref, initial=colourful)[0]
    assert np.abs(out).mean() < 0.2 * np.abs(colourful[1:]).mean()


def test_same_inputs_give_the_same_bytes_whatever_the_batch_and_thread_count():
    big = canvas(H + 16, W + 16, seed=15)
    frames = [big[:, t:t + H, 2 * t:2 * t + W] for t in range(3)]
    backend = PropagateBackend()
    first = run(backend, frames, frames[0], frames[0])
    prepared = backend.prepare(lab_tensor(frames[0]))
    alone = backend.correspond(torch.from_numpy(frames[2][:1])[None], prepared)
    batched = backend.correspond(torch.stack([torch.from_numpy(f[:1]) for f in frames]), prepared)[2]
    assert torch.equal(alone.lab, batched.lab) and torch.equal(alone.confidence, batched.confidence)
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        again = run(backend, frames, frames[0], frames[0])
    finally:
        cv2.setNumThreads(threads)
    for x, y in zip(first, again):
        assert x.tobytes() == y.tobytes()


def test_tiny_frames_work():
    frames = [canvas(32, 32, seed=16)] * 2
    out = run(PropagateBackend(), frames, canvas(40, 64, seed=17), initial=frames[0])
    assert all(o.shape == (2, 32, 32) and np.isfinite(o).all() for o in out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_what_the_cpu_gives_up_to_rounding():
    big = canvas(H + 16, W + 16, seed=18)
    frames = [big[:, t:t + H, 2 * t:2 * t + W] for t in range(3)]
    cpu = run(PropagateBackend(max_cells=2048), frames, frames[0], frames[0])
    cuda = run(PropagateBackend(device="cuda", max_cells=2048), frames, frames[0], frames[0])
    for x, y in zip(cpu, cuda):
        assert np.abs(x - y).mean() < 0.5


# --- end to end through the filter, on real footage ---------------------------------------

def test_the_filter_colorizes_real_footage_far_better_than_gray():
    frames = decode_rgb(sample_clip_path("carphone_pristine"), 12)
    truth = rgb_clip(frames)
    gray = vs.core.std.ShufflePlanes(vs.core.resize.Bicubic(truth, format=vs.YUV444P8, matrix_s="709"), 0, vs.GRAY)
    # Frame 0 in colour is the reference and the initial state (propagation mode).
    out = vs.core.resize.Bicubic(vsexcolor.colorize(gray, frames[0], backend="propagate", propagate=True),
                                 format=vs.RGB24, matrix_in_s="709")

    def rgb(clip: vs.VideoNode, n: int) -> np.ndarray:
        f = clip.get_frame(n)
        return np.stack([np.asarray(f[p]) for p in range(3)], -1).astype(np.float32) / 255.0

    gray_rgb = vs.core.resize.Bicubic(gray, format=vs.RGB24, matrix_in_s="709")
    ours = np.mean([psnr(rgb(out, n), rgb(truth, n)) for n in range(1, 12)])
    baseline = np.mean([psnr(rgb(gray_rgb, n), rgb(truth, n)) for n in range(1, 12)])
    # Measured: 26.7 dB for the gray frames, 38.8 colorized.
    assert baseline < 28.0
    assert ours > baseline + 8.0, (ours, baseline)
