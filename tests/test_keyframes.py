"""Every shot has a reference of its own: one placed anywhere in a shot serves all of it, and
a shot with none gets an automatic keyframe, its picked frame coloured by an image colorizer
(or taken from a clip of keyframes), propagated through the shot as a keyframe would be."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import vapoursynth as vs

import ddcnets
import vsexcolor
from clips import decode_rgb, props, render, sample_clip_path, yuv_clip
from vsexcolor.filter import PROP_KEYFRAME, PROP_REFERENCE, PROP_SCENE_START, PROP_SHOT_START
from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.keyframes import KeyframeColorizer
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.scenes import AUTOMATIC

core = vs.core

W, H = 64, 48


@pytest.fixture(scope="module")
def shots() -> np.ndarray:
    """Two shots: 7 frames of bikes, then 9 of Big Buck Bunny."""
    return np.concatenate([decode_rgb(sample_clip_path("bikes"), 7, (W, H)),
                           decode_rgb(sample_clip_path("bigbuckbunny"), 9, (W, H))])


def gray(frames: np.ndarray) -> vs.VideoNode:
    return core.std.ShufflePlanes(yuv_clip(frames), 0, vs.GRAY)


def run(clip, ref, **kwargs):
    return vsexcolor.colorize(clip, ref, backend="propagate", **kwargs)


def test_an_exemplar_inside_a_shot_serves_the_whole_shot(shots):
    out = run(gray(shots), {0: shots[0], 11: shots[3]})
    assert props(out, PROP_REFERENCE) == [0] * 7 + [1] * 9
    assert props(out, PROP_SCENE_START) == [0] * 7 + [7] * 9
    assert props(out, PROP_KEYFRAME) == [-1] * 16


def test_a_keyframe_inside_a_shot_serves_the_frames_before_it_from_its_colours(shots):
    out = run(gray(shots), {0: shots[0], 11: shots[11]}, propagate=True)
    assert props(out, PROP_REFERENCE) == [0] * 7 + [1] * 9
    # Its own frame restarts the recurrence; the frames before it in its shot start from it.
    assert props(out, PROP_SCENE_START) == [0] * 7 + [7] * 4 + [11] * 5
    assert props(out, PROP_SHOT_START) == [0] * 7 + [7] * 9
    assert props(out, PROP_KEYFRAME) == [0] * 7 + [11] * 9
    as_exemplar = run(gray(shots), {0: shots[0], 11: shots[3]})
    assert render(out, range(7, 11)) != render(as_exemplar, range(7, 11))


def test_a_second_reference_in_one_shot_takes_over_at_its_own_frame(shots):
    out = run(gray(shots), {2: shots[0], 4: shots[9]})
    assert props(out, PROP_REFERENCE) == [0] * 4 + [1] * 12
    assert props(out, PROP_SCENE_START) == [0] * 4 + [4] * 3 + [7] * 9
    assert props(out, PROP_SHOT_START) == [0] * 7 + [7] * 9


def test_a_clip_of_keyframes_colours_each_shot_at_its_sharpest_opening_frame(shots):
    # The second shot opens blurred, as after a fade: its first 3 frames are not picked.
    blurred = shots.copy()
    blurred[7:10] = [np.asarray(torch.nn.functional.avg_pool2d(torch.from_numpy(f).permute(2, 0, 1).float()[None],
                                                               5, 1, 2, count_include_pad=False)[0]
                                .permute(1, 2, 0).round().byte()) for f in shots[7:10]]
    requested = []

    def count(n, f):
        requested.append(n)
        return f

    colour = yuv_clip(blurred)
    keyframes = core.std.ModifyFrame(colour, colour, count)
    out = run(gray(blurred), None, keyframe_clip=keyframes)
    picks = props(out, PROP_KEYFRAME)
    first, second = picks[0], picks[7]
    assert 0 <= first < 7 and 10 <= second < 16
    assert picks == [first] * 7 + [second] * 9
    assert props(out, PROP_REFERENCE) == [AUTOMATIC] * 16
    assert props(out, PROP_SCENE_START) == [0] * first + [first] * (7 - first) + [7] * (second - 7) + \
        [second] * (16 - second)
    assert sorted(set(requested)) == [first, second]  # only the keyframes are asked of the source


def test_automatic_keyframes_give_the_same_bytes_in_any_request_order(shots):
    clip, keyframes = gray(shots), yuv_clip(shots)
    in_order = render(run(clip, None, keyframe_clip=keyframes), range(16))
    backwards = render(run(clip, None, keyframe_clip=keyframes), reversed(range(16)))
    shuffled = list(range(16))
    random.Random(3).shuffle(shuffled)
    assert backwards == in_order
    assert render(run(clip, None, keyframe_clip=keyframes, batch=2), shuffled) == \
        render(run(clip, None, keyframe_clip=keyframes, batch=2), range(16))


def test_a_ref_clip_as_long_as_the_clip_is_still_a_clip_of_keyframes_with_a_warning(shots):
    clip, keyframes = gray(shots), yuv_clip(shots)
    with pytest.warns(FutureWarning, match="pass it as keyframe_clip= instead"):
        old_way = run(clip, keyframes)
    assert render(old_way, range(16)) == render(run(clip, None, keyframe_clip=keyframes), range(16))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A folder holding a DDColor-T checkpoint with deterministic weights, as the released
    ``ddcolor_paper_tiny.pth``."""
    folder = tmp_path_factory.mktemp("models")
    ddcnets.save_checkpoint(folder / "ddcolor_paper_tiny.pth", "tiny", seed=7, wrapped=True)
    return folder


def test_without_a_reference_each_shot_is_coloured_by_the_keyframe_model(shots, tiny_model, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tiny_model))
    clip = gray(shots[7:])  # one shot
    out = run(clip, None)
    pick = props(out, PROP_KEYFRAME)[0]
    assert props(out, PROP_REFERENCE) == [AUTOMATIC] * 9
    # The same as the keyframe a user would export and colour: the frame's own L*, the
    # model's a*b*, in force over the whole shot.
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    net = ddcnets.ddcolor_with_golden_weights("tiny", seed=7)
    keyframe = KeyframeColorizer(net, torch.device("cpu")).rgb(luma.L(clip.get_frame(pick)))
    by_hand = run(clip, {pick: (keyframe * 65535).round().astype(np.uint16)}, propagate=True)
    assert props(by_hand, PROP_SCENE_START) == props(out, PROP_SCENE_START)
    assert render(out, range(9)) == render(run(clip, {pick: keyframe}, propagate=True), range(9))


def test_a_named_keyframe_model_that_is_missing_is_an_error_even_with_references(shots, tmp_path):
    with pytest.raises(vs.Error, match="colorize: no ddcolor_artistic.pth in the model folder"):
        run(gray(shots), shots[0], keyframe_model="ddcolor_artistic")


def test_no_reference_and_no_keyframe_model_names_both_ways_out(shots):
    with pytest.raises(vs.Error, match=r"no colour reference was given and .*`ref=` in colorize.* "
                                       r"`vsexcolor download ddcolor`"):
        run(gray(shots), None)
    with pytest.raises(vs.Error, match="keyframe_model='none' leaves nothing to colour from"):
        run(gray(shots), None, keyframe_model="none")


def test_keyframe_model_none_keeps_shots_without_a_reference_on_the_reference_before(shots, tiny_model,
                                                                                      monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tiny_model))
    assert props(run(gray(shots), shots[0]), PROP_REFERENCE) == [0] * 7 + [AUTOMATIC] * 9
    assert props(run(gray(shots), shots[0], keyframe_model="none"), PROP_REFERENCE) == [0] * 16


def test_a_clip_of_keyframes_must_have_the_clip_s_size(shots):
    small = core.resize.Bilinear(yuv_clip(shots), W // 2, H // 2)
    with pytest.raises(vs.Error, match=r"keyframe_clip must be a clip of keyframes of the clip's size and length, "
                                       r"64x48, 16 frames, got '32x24, 16 frames'"):
        run(gray(shots), None, keyframe_clip=small)


def test_a_render_records_the_keyframe_model_it_colours_with(shots, tiny_model, monkeypatch):
    import hashlib

    from vsexcolor.filter import recording

    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tiny_model))
    with recording(planning=True) as found:
        run(gray(shots), None)
    digest = hashlib.sha256((tiny_model / "ddcolor_paper_tiny.pth").read_bytes()).hexdigest()
    assert [f.keyframe_sha256 for f in found] == [digest]
    with recording(planning=True) as found:
        run(gray(shots), shots[0], keyframe_model="none")
    assert [f.keyframe_sha256 for f in found] == [None]
