"""Scene detection: real cuts are found, motion is not a cut, and segments are memoised."""
from __future__ import annotations

import pytest
import torch

from clips import decode_rgb, sample_clip_path
from vsexcolor.color import rgb_to_lab
from vsexcolor.filter.resolution import DEFAULT_PIXELS, Geometry
from vsexcolor.filter.scenes import DEFAULT_THRESHOLD, Scenes, Segment, cut_score


def internal_L(frames) -> list[torch.Tensor]:
    g = Geometry.fit(frames.shape[2], frames.shape[1], DEFAULT_PIXELS, 8)
    rgb = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    return [g.to_internal(rgb_to_lab(f[None])[:, :1]) for f in rgb]


def test_the_detector_finds_the_real_cuts_of_a_clip_and_nothing_else():
    # bikes.mp4 cuts to a new shot at frames 30 and 76 (looked at); the rest is camera
    # and subject motion, some of it fast.
    L = internal_L(decode_rgb(sample_clip_path("bikes"), 100))
    cuts = [n for n in range(1, len(L)) if cut_score(L[n - 1], L[n]) > DEFAULT_THRESHOLD]
    assert cuts == [30, 76]


def test_frames_of_different_clips_score_as_cuts():
    a = internal_L(decode_rgb(sample_clip_path("bigbuckbunny"), 1, (384, 216)))[0]
    b = internal_L(decode_rgb(sample_clip_path("carphone_pristine"), 1, (384, 216)))[0]
    assert cut_score(a, b) > DEFAULT_THRESHOLD
    assert cut_score(a, a) == 0.0


def test_segments_start_at_cuts_and_reference_starts():
    asked = []

    def is_cut(n):
        asked.append(n)
        return n == 4

    scenes = Scenes(12, reference_starts=(0, 8), is_cut=is_cut)
    got = [scenes.segment(n) for n in reversed(range(12))][::-1]
    assert got == [Segment(0, 0)] * 4 + [Segment(4, 0)] * 4 + [Segment(8, 1)] * 4
    assert sorted(asked) == sorted(set(asked))  # each frame pair is tested once
    assert 8 not in asked  # a reference start needs no cut test


def test_per_scene_references_are_the_scene_starts():
    scenes = Scenes(6, is_cut=lambda n: n == 3, per_scene_reference=True)
    assert [scenes.segment(n) for n in range(6)] == [Segment(0, 0)] * 3 + [Segment(3, 3)] * 3


def test_a_bounded_search_looks_no_further_back_than_asked_and_remembers_what_it_saw():
    tested = []
    scenes = Scenes(100, is_cut=lambda n: pytest.fail("the search tests only the frames it is given"))

    def cut_at_40(k):
        tested.append(k)
        return k == 40

    assert scenes.known_start(57) is None
    assert not scenes.locate(57, 49, cut_at_40)  # no cut in 50..57
    assert tested == list(range(57, 49, -1))
    assert scenes.known_start(57) is None
    assert scenes.locate(49, 41, cut_at_40) is False and scenes.locate(41, 33, cut_at_40)
    # 50..57 were seen to start nothing, so 57's start is known without a test.
    tested.clear()
    assert scenes.known_start(57) == 40
    assert scenes.segment(57) == Segment(40, 0) and tested == []


def test_a_search_stopped_by_a_frame_it_must_read_goes_on_from_where_it_stopped():
    # A callback that lacks a frame stops, reads it with its locks released, and runs again
    # (vsexcolor.filter.callback_reads): the frames it already tested are not tested again.
    tested, at_hand = [], set(range(30, 100))

    class Stopped(Exception):
        pass

    def is_cut(k):
        if k not in at_hand:
            at_hand.add(k)  # read, for the next run
            raise Stopped
        tested.append(k)
        return k == 12

    scenes = Scenes(100, is_cut=is_cut)
    with pytest.raises(Stopped):
        scenes.segment(80)
    assert tested == list(range(80, 30 - 1, -1))
    tested.clear()
    with pytest.raises(Stopped):
        scenes.segment(80)
    assert tested == [29]  # not 80..29 again
    tested.clear()
    at_hand.update(range(100))
    assert scenes.segment(80) == Segment(12, 0)
    assert tested == list(range(28, 11, -1))


def test_without_scene_detection_every_start_is_known_at_once():
    scenes = Scenes(100, reference_starts=(0, 60))
    assert scenes.known_start(59) == 0 and scenes.known_start(99) == 60
