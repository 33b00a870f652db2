"""A long shot with no reference of its own gets more automatic keyframes than its picked
frame: another where the picture has moved on from the last, within a shortest and a
longest gap, and its last frame; the colour between is carried both ways. The filter finds
them itself, walking forward through the shot, with the same bytes in any request order."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vsexcolor
import vsexcolor.filter.frame_requests
from clips import decode_rgb, frame_bytes, props, render, sample_clip_path, yuv_clip
from vsexcolor.filter import PROP_KEYFRAME, PROP_NEXT_KEYFRAME, PROP_SCENE_START, PROP_SHOT_START, recording
from vsexcolor.filter import shots as shots_mod
from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.keyframe_rule import place
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.placement import Rule, ShotKeyframes

core = vs.core

W, H = 64, 48
PAN = 40  # frames of the panning shot
GAPS = (0.25, 1.0)  # seconds: 6 and 24 frames at the test clips' 24 fps


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    """A camera panning across a wide bikes frame for PAN frames (4 pixels a frame: the
    picture moves on), then a cut to 8 frames of Big Buck Bunny."""
    wide = decode_rgb(sample_clip_path("bikes"), 1, (4 * W, H))[0]
    pan = np.stack([wide[:, 4 * i:4 * i + W] for i in range(PAN)])
    return np.concatenate([pan, decode_rgb(sample_clip_path("bigbuckbunny"), 8, (W, H))])


def gray(frames: np.ndarray) -> vs.VideoNode:
    return core.std.ShufflePlanes(yuv_clip(frames), 0, vs.GRAY)


def colorize(frames: np.ndarray, **kwargs) -> vs.VideoNode:
    return vsexcolor.colorize(gray(frames), keyframe_clip=yuv_clip(frames), backend="propagate",
                              keyframe_pick="first", keyframe_gaps=GAPS, **kwargs)


def test_a_long_shot_gets_keyframes_where_the_picture_has_moved_on_as_the_rule_places_them(film):
    requested = []
    colour = yuv_clip(film)
    counted = core.std.ModifyFrame(colour, colour, lambda n, f: requested.append(n) or f)
    out = vsexcolor.colorize(gray(film), keyframe_clip=counted, backend="propagate", keyframe_pick="first",
                             keyframe_gaps=GAPS)
    keys = props(out, PROP_KEYFRAME)
    pan_keys = sorted(set(keys[:PAN]))
    # The rule itself, on the frames as the cut detector sees them, from the shot's first frame.
    luma = Luma(gray(film), colour_props(gray(film), {}))
    expected = place(lambda i: shots_mod.detection_L(luma, luma.clip.get_frame(i)), PAN, 24.0,
                     min_gap=GAPS[0], max_gap=GAPS[1])
    assert pan_keys == expected
    assert len(pan_keys) >= 4 and pan_keys[-1] == PAN - 1  # several, the last frame among them
    assert all(6 <= b - a <= 24 for a, b in zip(pan_keys, pan_keys[1:]))
    # Each frame restarts at its keyframe and is carried back from the next one.
    starts, nexts = props(out, PROP_SCENE_START), props(out, PROP_NEXT_KEYFRAME)
    for n in range(PAN):
        before = max(k for k in pan_keys if k <= n)
        after = [k for k in pan_keys if k > n]
        assert keys[n] == starts[n] == before
        assert nexts[n] == (after[0] if after else -1)
    assert props(out, PROP_SHOT_START) == [0] * PAN + [PAN] * 8
    assert sorted(set(requested)) == sorted(set(keys))  # only the keyframes are asked of the source


def test_keyframe_gaps_none_keeps_one_automatic_keyframe_a_shot(film):
    out = vsexcolor.colorize(gray(film), keyframe_clip=yuv_clip(film), backend="propagate", keyframe_pick="first",
                             keyframe_gaps=None)
    assert props(out, PROP_KEYFRAME) == [0] * PAN + [PAN] * 8


def test_longer_gaps_place_fewer_keyframes(film):
    def count(gaps):
        out = vsexcolor.colorize(gray(film), keyframe_clip=yuv_clip(film), backend="propagate",
                                 keyframe_pick="first", keyframe_gaps=gaps)
        return len(set(props(out, PROP_KEYFRAME)[:PAN]))

    assert count((1.0, 2.0)) < count(GAPS)


def test_every_request_order_gives_the_same_bytes_and_reads_no_frame_in_a_callback(film, monkeypatch):
    small = {"batch": 3, "cache_frames": 2, "checkpoint_every": 4, "checkpoints": 2, "pixels": 1024}
    frames = len(film)
    shuffled = list(range(frames))
    random.Random(5).shuffle(shuffled)
    orders = [list(range(frames)), list(reversed(range(frames))), shuffled, [33, 2, 45, 20, 7, 39, 0]]
    outputs = [colorize(film, **small) for _ in range(len(orders) + 1)]
    reads = []
    original = vsexcolor.filter.frame_requests.Source._read
    monkeypatch.setattr(vsexcolor.filter.frame_requests.Source, "_read",
                        lambda self, clip, n: reads.append(n) or original(self, clip, n))
    expected = render(outputs[0], orders[0])
    for out, order in zip(outputs[1:], orders[1:]):
        assert render(out, order) == {n: expected[n] for n in order}
    assert reads == []  # the walk's and the keyframes' frames were brought along as dependencies
    # Several threads, frames asked ahead as vspipe asks them: the bytes hold.
    assert {n: frame_bytes(f) for n, f in enumerate(outputs[-1].frames(prefetch=8))} == expected


def test_a_late_start_walks_only_the_window_of_its_frame(film, monkeypatch):
    # Windows of 24 frames (the longest gap): frame 30 lies in the pan's second, 24..39.
    small = {"pixels": 1024}
    expected = colorize(film, **small)
    fed = []
    feed = ShotKeyframes.feed
    monkeypatch.setattr(ShotKeyframes, "feed", lambda self, n, L, last: fed.append(n) or feed(self, n, L, last))
    late = colorize(film, **small)
    assert render(late, [30]) == render(expected, [30])
    assert fed and set(fed) <= set(range(24, PAN))  # neither the opening nor the first window
    assert late.get_frame(30).props[PROP_KEYFRAME] == expected.get_frame(30).props[PROP_KEYFRAME] >= 24


def test_a_planning_pass_and_vsexcolor_shots_find_the_keyframes_a_render_colours(film):
    out = colorize(film)
    with recording(planning=True):
        planned = colorize(film)
    assert props(planned, PROP_KEYFRAME) == props(out, PROP_KEYFRAME)
    assert props(planned, PROP_NEXT_KEYFRAME) == props(out, PROP_NEXT_KEYFRAME)
    found = shots_mod.find(gray(film), 0.3, pick="first", keyframe_gaps=GAPS)
    keys = props(out, PROP_KEYFRAME)
    assert [shot.keyframes for shot in found] == [tuple(sorted(set(keys[:PAN]))), tuple(sorted(set(keys[PAN:])))]
    assert [(shot.first, shot.last) for shot in found] == [(0, PAN - 1), (PAN, len(film) - 1)]


@pytest.mark.parametrize("gaps", [(0, 1), (2.0, 1.0), "1,2", (1.0,), (1, 2, 3), (float("nan"), 1.0)])
def test_keyframe_gaps_are_checked_up_front(film, gaps):
    with pytest.raises(vs.Error, match=r"colorize: keyframe_gaps must be"):
        vsexcolor.colorize(gray(film), keyframe_clip=yuv_clip(film), backend="propagate", keyframe_gaps=gaps)


def test_a_shot_s_keyframes_are_known_for_good_only_once_the_shot_goes_on_past_them():
    # A walk fed frames one by one: what it says of a frame never changes as more come.
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (1, 1, 24, 200)).astype(np.float32)
    frames = [torch.from_numpy(np.ascontiguousarray(base[..., 5 * i:5 * i + 40])) for i in range(30)]
    final = ShotKeyframes(0, Rule(1, (3, 8)))
    for i, L in enumerate(frames):
        final.feed(i, L, i == len(frames) - 1)
    walking = ShotKeyframes(0, Rule(1, (3, 8)))
    for i, L in enumerate(frames):
        walking.feed(i, L, i == len(frames) - 1)
        for n in range(i + 1):
            if walking.decided(n):
                assert walking.segment_start(n) == final.segment_start(n)
        assert set(walking.keyframes) <= set(final.keyframes)
    assert final.keyframes == tuple(place(lambda i: frames[i], len(frames), 1.0, min_gap=3, max_gap=8))
    assert {0, 8, 16, 24} <= set(final.keyframes) and len(final.keyframes) > 5  # windows of 8, and more

    # The windows walked in another order, each from its first frame: the same keyframes.
    shuffled = ShotKeyframes(0, Rule(1, (3, 8)))
    for first in (16, 8, 24, 0):
        for i in range(first, min(first + 8, len(frames))):
            assert shuffled.next_frame(i) == i
            shuffled.feed(i, frames[i], i == len(frames) - 1)
        assert all(shuffled.decided(n) and shuffled.segment_start(n) == final.segment_start(n)
                   for n in range(first, min(first + 8, len(frames))))
    assert shuffled.keyframes == final.keyframes


def test_the_commands_take_the_gaps_and_shots_exports_the_keyframes_colorize_colours(film, tmp_path, capsys,
                                                                                    monkeypatch):
    import ddcnets
    from media import write_video
    from vsexcolor.commands import main
    from vsexcolor.render.video import open_clip, probe

    models = tmp_path / "models"
    models.mkdir()
    ddcnets.save_checkpoint(models / "ddcolor_paper_tiny.pth", "tiny", seed=7, wrapped=True)
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(models))
    video = write_video(tmp_path / "film.mkv", film, codec="ffv1", pix_fmt="yuv444p", audio=False)
    gaps = ["--min-gap", "0.24", "--max-gap", "0.96"]  # 6 and 24 frames at 25 fps
    assert main(["shots", str(video), "-o", str(tmp_path / "shots"), "--pick", "first", *gaps]) == 0
    listed = [s["keyframes"] for s in json.loads((tmp_path / "shots" / "shots.json").read_text())["shots"]]
    found = shots_mod.find(open_clip(probe(video, progress=False)), 0.3, pick="first", keyframe_gaps=(0.24, 0.96))
    assert len(listed[0]) >= 4 and listed == [list(shot.keyframes) for shot in found]
    args = ["colorize", str(video), "--backend", "propagate", "--codec", "ffv1", "--size", "1024",
            "--keyframe-pick", "first"]
    assert main([*args, *gaps, "-o", str(tmp_path / "gaps.mkv")]) == 0
    assert main([*args, "--one-keyframe", "-o", str(tmp_path / "one.mkv")]) == 0
    assert (tmp_path / "gaps.mkv").read_bytes() != (tmp_path / "one.mkv").read_bytes()
    capsys.readouterr()
    assert main([*args, "--one-keyframe", "--min-gap", "1", "-o", str(tmp_path / "x.mkv")]) == 2
    assert "--one-keyframe places no keyframe after the first" in capsys.readouterr().err
    assert main([*args, "--min-gap", "3", "--max-gap", "1", "-o", str(tmp_path / "x.mkv")]) == 2
    assert "0 < min <= max" in capsys.readouterr().err
    assert not (tmp_path / "x.mkv").exists()
