"""Colour carried both ways between the keyframes of a shot (``direction="both"``, the
default): which frames take which passes, that the backward pass is the forward pass of the
clip played backwards, and that the bytes stay the same in any request order."""
from __future__ import annotations

import random
from concurrent.futures import Future

import numpy as np
import pytest
import vapoursynth as vs

import vsexcolor
import vsexcolor.filter.both_ways
import vsexcolor.filter.frame_requests
from clips import decode_rgb, frame_bytes, render, sample_clip_path, yuv_clip
from vsexcolor.filter import PROP_KEYFRAME, PROP_NEXT_KEYFRAME, PROP_SCENE_START

core = vs.core

W, H = 64, 48
PIXELS = 48 * 64
FRAMES = 20


@pytest.fixture(scope="module")
def bikes() -> np.ndarray:
    return decode_rgb(sample_clip_path("bikes"), FRAMES, (W, H))


def gray(frames: np.ndarray) -> vs.VideoNode:
    """The frames' luma under neutral chroma: gray input with the colour frames' luma."""
    clip = yuv_clip(np.ascontiguousarray(frames), vs.YUV444P8)
    return core.std.ShufflePlanes([clip, core.std.BlankClip(clip, color=[128, 128, 128])], [0, 1, 2], vs.YUV)


def test_frames_between_two_keyframes_of_a_shot_take_both_passes_and_say_which(bikes):
    keys = {4: bikes[4], 13: bikes[13]}
    both = vsexcolor.colorize(gray(bikes), keys, backend="propagate", propagate=True, pixels=PIXELS)
    forward = vsexcolor.colorize(gray(bikes), keys, backend="propagate", propagate=True, pixels=PIXELS,
                                 direction="forward")
    props = [dict(f.props) for f in both.frames()]
    assert [p[PROP_NEXT_KEYFRAME] for p in props] == [4] * 4 + [13] * 9 + [-1] * 7
    assert [p[PROP_KEYFRAME] for p in props] == [4] * 4 + [4] * 9 + [13] * 7
    assert all(f.props[PROP_NEXT_KEYFRAME] == -1 for f in forward.frames())
    a, b = render(both, range(FRAMES)), render(forward, range(FRAMES))
    changed = [n for n in range(FRAMES) if a[n] != b[n]]
    # Before the first keyframe (backward alone) and between the two; from the last one on,
    # and at each keyframe itself, forward alone.
    assert changed == [0, 1, 2, 3, *range(5, 13)]


def test_the_backward_pass_is_the_forward_pass_of_the_clip_played_backwards(bikes, run):
    # Frames before a shot's only keyframe take its colours carried backward alone: the
    # render of the reversed clip from the same keyframe, forward, frame for frame.
    k, last = 14, FRAMES - 1
    for backend in ("propagate", "devc"):
        both = run(gray(bikes), {k: bikes[k]}, backend=backend, propagate=True)
        played_back = run(gray(bikes[::-1]), {last - k: bikes[k]}, backend=backend, propagate=True,
                          direction="forward")
        a, b = render(both, range(k + 1)), render(played_back, range(last - k, FRAMES))
        assert all(a[n] == b[last - n] for n in range(k + 1)), backend


def test_an_exemplar_inside_a_shot_is_carried_backward_to_the_frames_before_it(bikes, run):
    # Two references of another size (exemplars), the second inside the shot: the frames
    # between them take both; the first serves its whole shot, so no frame is before it.
    exemplars = {0: bikes[0][::2, ::2].copy(), 12: bikes[12][::2, ::2].copy()}
    out = run(gray(bikes), exemplars, backend="propagate")
    assert [f.props[PROP_NEXT_KEYFRAME] for f in out.frames()] == [12] * 12 + [-1] * 8
    assert [f.props[PROP_SCENE_START] for f in out.frames()] == [0] * 12 + [12] * 8


def test_every_request_order_gives_the_bytes_of_an_in_order_render_both_ways(bikes, run, monkeypatch):
    keys = {3: bikes[3], 16: bikes[16]}
    small = {"batch": 3, "cache_frames": 2, "checkpoint_every": 4, "checkpoints": 2}
    shuffled = list(range(FRAMES))
    random.Random(3).shuffle(shuffled)
    orders = [list(range(FRAMES)), list(reversed(range(FRAMES))), shuffled, [12, 4, 15, 5, 11, 6, 0, 19]]
    # Built first: building reads frames (where each keyframe's shot starts), rendering must not.
    outputs = [run(gray(bikes), keys, propagate=True, **small) for _ in range(len(orders) + 1)]
    reads = []
    original = vsexcolor.filter.frame_requests.Source._read
    monkeypatch.setattr(vsexcolor.filter.frame_requests.Source, "_read",
                        lambda self, clip, n: reads.append(n) or original(self, clip, n))
    expected = render(outputs[0], orders[0])
    assert len(set(expected.values())) == FRAMES
    for out, order in zip(outputs[1:], orders[1:]):
        assert render(out, order) == {n: expected[n] for n in order}
    assert reads == []  # every frame the passes read was brought along as a dependency
    # All at once, the bytes hold; the engine may then read a frame itself, as forward alone
    # (a request planned in order can run before the one it follows: left for a later issue).
    futures: list[Future] = [outputs[-1].get_frame_async(k) for k in shuffled]
    assert {k: frame_bytes(f.result()) for k, f in zip(shuffled, futures)} == expected


def test_a_gap_longer_than_the_backward_engine_holds_is_stepped_again_to_the_same_bytes(bikes, run, monkeypatch):
    keys = {0: bikes[0], FRAMES - 1: bikes[FRAMES - 1]}
    expected = render(run(gray(bikes), keys, propagate=True, backend="propagate"), range(FRAMES))
    monkeypatch.setattr(vsexcolor.filter.both_ways, "BACKWARD_HELD", 3)
    out = run(gray(bikes), keys, propagate=True, backend="propagate", cache_frames=2, checkpoint_every=4)
    assert render(out, range(FRAMES)) == expected


def test_direction_is_checked_up_front(bikes):
    with pytest.raises(vs.Error, match=r"colorize: direction must be 'both' or 'forward', got 'backward'"):
        vsexcolor.colorize(gray(bikes), bikes[0], backend="propagate", direction="backward")


def test_the_command_takes_direction_and_refuses_other_words(bikes, tmp_path, capsys):
    from media import write_image, write_video
    from vsexcolor.commands import main

    film = write_video(tmp_path / "film.mp4", bikes)
    keys = [f"{k}={write_image(tmp_path / f'{k}.png', bikes[k])}" for k in (0, 15)]
    args = ["colorize", str(film), "--propagate", "--backend", "propagate", "--codec", "ffv1", "--size", str(PIXELS),
            *(a for k in keys for a in ("--ref-at", k))]
    outputs = {}
    for direction in ("both", "forward"):
        outputs[direction] = tmp_path / f"{direction}.mkv"
        assert main([*args, "--direction", direction, "-o", str(outputs[direction])]) == 0
    assert outputs["both"].read_bytes() != outputs["forward"].read_bytes()
    with pytest.raises(SystemExit):
        main([*args, "--direction", "backward", "-o", str(tmp_path / "x.mkv")])
    assert "invalid choice: 'backward'" in capsys.readouterr().err
