"""Fusing a frame's forward and backward colourings, and placing a long shot's keyframes.

ab values are CIE units; confidences 0..1.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_propagate import canvas

from vsexcolor.filter.fusion import distance_weights, fuse, pass_weights
from vsexcolor.filter.keyframe_rule import explained, place

H, W = 6, 8


def ab(seed: int) -> torch.Tensor:
    return torch.randn(1, 2, H, W, generator=torch.Generator().manual_seed(seed)) * 30.0


def confidence(seed: int) -> torch.Tensor:
    return torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(seed))


# --- fusion ------------------------------------------------------------------------------

@pytest.mark.parametrize("with_confidence", [False, True])
def test_two_equal_passes_fuse_to_themselves(with_confidence):
    x = ab(0)
    c = (confidence(1), confidence(2)) if with_confidence else (None, None)
    torch.testing.assert_close(fuse(x, x.clone(), 3, 9, *c), x)


@pytest.mark.parametrize("since, until, side", [(0, 7, "forward"), (7, 0, "backward")])
def test_a_frame_at_a_keyframe_takes_that_keyframes_pass_however_unsure_it_is(since, until, side):
    forward, backward = ab(0), ab(1)
    sure, unsure = torch.ones(1, 1, H, W), torch.zeros(1, 1, H, W)
    # The pass of the keyframe at hand is the unsure one: it is still taken alone.
    c = (unsure, sure) if side == "forward" else (sure, unsure)
    expected = forward if side == "forward" else backward
    torch.testing.assert_close(fuse(forward, backward, since, until, *c), expected)
    torch.testing.assert_close(fuse(forward, backward, since, until), expected)


def test_weights_sum_to_one_at_every_pixel_and_lie_in_0_1():
    for since, until in ((1, 1), (1, 30), (29, 2)):
        f, b = pass_weights(since, until, confidence(3), confidence(4))
        assert f.shape == b.shape == (1, 1, H, W)
        torch.testing.assert_close(f + b, torch.ones(1, 1, H, W))
        assert f.min() >= 0 and f.max() <= 1


def test_without_confidences_the_weights_follow_the_distances():
    assert distance_weights(1, 3) == (0.75, 0.25)
    forward, backward = ab(0), ab(1)
    torch.testing.assert_close(fuse(forward, backward, 5, 5), (forward + backward) / 2)
    torch.testing.assert_close(fuse(forward, backward, 1, 3), 0.75 * forward + 0.25 * backward)


def test_a_pixel_one_pass_is_sure_of_and_the_other_not_leans_to_the_sure_one():
    sure, unsure = torch.ones(1, 1, H, W), torch.zeros(1, 1, H, W)
    forward_weight, _ = pass_weights(5, 5, sure, unsure)
    assert (forward_weight > 0.9).all()
    # Equally sure passes midway weigh the same, whatever their confidence.
    half, _ = pass_weights(5, 5, confidence(5), confidence(5))
    torch.testing.assert_close(half, torch.full((1, 1, H, W), 0.5))


def test_negative_confidences_count_as_none():
    # DEVC's confidence is a cosine similarity, -1..1.
    f_neg, _ = pass_weights(2, 2, torch.full((1, 1, H, W), -0.7), torch.ones(1, 1, H, W))
    f_zero, _ = pass_weights(2, 2, torch.zeros(1, 1, H, W), torch.ones(1, 1, H, W))
    torch.testing.assert_close(f_neg, f_zero)


def test_the_fused_chroma_has_the_passes_shape_and_type():
    out = fuse(ab(0), ab(1), 2, 3, confidence(1), confidence(2))
    assert out.shape == (1, 2, H, W) and out.dtype == torch.float32


@pytest.mark.parametrize("call", [
    lambda: fuse(ab(0), ab(1)[..., :-1], 1, 1),
    lambda: fuse(ab(0), ab(1), 0, 0),
    lambda: fuse(ab(0), ab(1), -1, 3),
    lambda: fuse(ab(0), ab(1), 1, 1, confidence(0), None),
    lambda: fuse(ab(0), ab(1), 1, 1, confidence(0), confidence(1)[..., :-1]),
])
def test_inconsistent_inputs_are_refused(call):
    with pytest.raises(ValueError):
        call()


# --- keyframe placement ---------------------------------------------------------------

SH, SW = 64, 96


def panning_shot(length: int, step: int) -> list[torch.Tensor]:
    """L [1, 1, SH, SW] of a camera panning ``step`` pixels a frame over a wide canvas."""
    big = canvas(SH, SW + step * length, seed=7)[0]
    return [torch.from_numpy(np.ascontiguousarray(big[:, i * step:i * step + SW]))[None, None]
            for i in range(length)]


def test_a_keyframe_explains_itself_and_less_of_a_frame_panned_away():
    frames = panning_shot(30, 3)
    assert explained(frames[0], frames[0]) > 0.95
    assert explained(frames[0], frames[4]) > 0.7  # 12 of 96 columns are new
    assert explained(frames[0], frames[25]) < 0.3  # 75 of 96 columns are new


def test_a_still_shot_gets_keyframes_at_the_longest_gap_and_its_last_frame():
    still = panning_shot(1, 0)[0]
    keys = place(lambda i: still, 100, 10.0, min_gap=1.0, max_gap=4.0, threshold=0.5)
    assert keys == [0, 40, 80, 99]


def test_a_pan_gets_a_keyframe_once_the_last_no_longer_explains_the_frame():
    frames = panning_shot(40, 2)
    keys = place(lambda i: frames[i], 40, 10.0, min_gap=0.3, max_gap=10.0, threshold=0.5)
    assert keys[0] == 0 and len(keys) >= 3
    for before, key in itertools.pairwise(keys):
        if key == 39:  # the shot's last frame, a shortest gap or more after the last
            assert key - before >= 3
            continue
        assert explained(frames[before], frames[key]) < 0.5
        assert key - before == 3 or explained(frames[before], frames[key - 1]) >= 0.5


def test_no_keyframe_comes_sooner_than_the_shortest_gap():
    frames = panning_shot(40, 20)  # every frame mostly new
    keys = place(lambda i: frames[i], 40, 10.0, min_gap=1.0, max_gap=10.0, threshold=0.5)
    assert keys == [0, 10, 20, 39]  # the one due at 30 lies within 10 of the end


def test_each_window_of_the_longest_gap_starts_with_a_keyframe_even_near_the_shots_end():
    still = panning_shot(1, 0)[0]
    # Windows of 40 frames: the second starts 9 frames before the end, within the shortest
    # gap; it keeps its keyframe (its keyframes depend on its own frames alone), and the
    # last frame is too near it to be one.
    assert place(lambda i: still, 50, 10.0, min_gap=1.5, max_gap=4.0) == [0, 40]


def test_a_window_s_keyframes_depend_on_its_own_frames_alone():
    frames = panning_shot(60, 6)
    keys = place(lambda i: frames[i], 60, 10.0, min_gap=0.5, max_gap=2.0, threshold=0.5)
    assert {0, 20, 40} <= set(keys)
    for first in (20, 40):  # the shot walked from a later window's start on
        later = place(lambda i: frames[first + i], 60 - first, 10.0, min_gap=0.5, max_gap=2.0, threshold=0.5)
        assert [first + k for k in later] == [k for k in keys if k >= first]
    # A content keyframe stays the shortest gap clear of the next window's first.
    assert all(k % 20 == 0 or 5 <= k % 20 <= 15 for k in keys[:-1])


def test_a_short_shot_keeps_one_keyframe():
    frames = panning_shot(8, 3)
    assert place(lambda i: frames[i], 8, 10.0, min_gap=1.0, max_gap=4.0) == [0]


def test_placement_limits_are_checked():
    with pytest.raises(ValueError, match="min_gap <= max_gap"):
        place(lambda i: torch.zeros(1, 1, 8, 8), 10, 25.0, min_gap=2.0, max_gap=1.0)
