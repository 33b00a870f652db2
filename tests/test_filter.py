"""vsexcolor.colorize as a VapourSynth filter: formats, exactness under any request order,
scene and reference restarts, memory bounds and errors (DEVC on deterministic test weights)."""
from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vsexcolor
import vsexcolor.filter.frame_requests
import vsexcolor.filter.nodes
from clips import decode_rgb, frame_bytes, from_planes, render, rgb_clip, sample_clip_path, yuv_clip
from vsexcolor.filter import PROP_BACKEND, PROP_REFERENCE, PROP_SCENE_START
from vsexcolor.filter.frame_requests import SEEK_STEP

core = vs.core

W, H = 64, 48
PIXELS = 48 * 64  # tiny internal resolution keeps the nets fast on CPU


@pytest.fixture(scope="module")
def bikes() -> np.ndarray:
    return decode_rgb(sample_clip_path("bikes"), 12, (W, H))


@pytest.fixture(scope="module")
def bunny() -> np.ndarray:
    return decode_rgb(sample_clip_path("bigbuckbunny"), 6, (W, H))


# --- formats -------------------------------------------------------------------------

FORMATS = [
    (vs.GRAY8, vs.YUV420P8), (vs.GRAY16, vs.YUV420P16), (vs.GRAYS, vs.YUV420PS),
    (vs.YUV420P8, vs.YUV420P8), (vs.YUV420P10, vs.YUV420P10), (vs.YUV422P16, vs.YUV422P16),
    (vs.YUV444PS, vs.YUV444PS), (vs.RGB24, vs.RGB24), (vs.RGB48, vs.RGB48), (vs.RGBS, vs.RGBS),
]


@pytest.mark.parametrize("fmt,expected", FORMATS, ids=lambda f: core.get_video_format(f).name)
def test_output_format_follows_input_and_luma_is_untouched(run, bikes, fmt, expected):
    family = core.get_video_format(fmt).color_family
    src = rgb_clip(bikes[:2])
    if family == vs.RGB:
        clip = core.resize.Point(src, format=fmt)
    else:
        clip = core.resize.Bicubic(src, format=fmt, matrix_s="709", range_s="limited")
    out = run(clip, bikes[0])
    assert out.format.id == core.get_video_format(expected).id
    assert (out.width, out.height, out.num_frames) == (clip.width, clip.height, clip.num_frames)
    for n in range(clip.num_frames):
        f_in, f_out = clip.get_frame(n), out.get_frame(n)
        if family == vs.RGB:
            # RGB keeps CIE L*: the finish fits colours into the gamut by chroma alone, and
            # its sRGB conversion is within 4e-4 of exact (0.05 L* at most); storing 8-bit
            # RGB moves each channel by up to half a step, which moves L* by up to about 0.3.
            lab_in, lab_out = _lab(f_in), _lab(f_out)
            bound = 0.5 if core.get_video_format(fmt).bits_per_sample == 8 else 0.05
            assert np.abs(lab_in[..., 0] - lab_out[..., 0]).max() < bound
            # Chroma is predicted: the output is not gray.
            assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 5
        else:
            assert np.array_equal(np.asarray(f_in[0]), np.asarray(f_out[0]))
            assert np.asarray(f_out[1]).astype(np.float64).std() > 0  # chroma is predicted


@pytest.mark.parametrize("fmt,range_", [(vs.GRAY8, vs.RANGE_FULL), (vs.YUV420P10, vs.RANGE_LIMITED),
                                         (vs.GRAY16, vs.RANGE_FULL)], ids=["gray8", "yuv420p10-limited", "gray16"])
def test_integer_luma_is_looked_up_as_the_l_of_its_value_converted_to_float(fmt, range_):
    from vsexcolor.color import gray_to_l
    from vsexcolor.filter.luma import Luma

    bits = core.get_video_format(fmt).bits_per_sample
    dtype = np.uint8 if bits == 8 else np.uint16
    codes = np.random.default_rng(bits).integers(0, 1 << bits, (48, 64)).astype(dtype)
    chroma = [np.full((24, 32), 1 << (bits - 1), dtype)] * 2 if fmt == vs.YUV420P10 else []
    clip = from_planes([[codes, *chroma]], fmt)
    props = {"_Range": range_}
    as_float = core.resize.Point(core.std.ShufflePlanes(clip, 0, vs.GRAY), format=vs.GRAYS,
                                 range_in_s="full" if range_ == vs.RANGE_FULL else "limited", range_s="full")
    expected = gray_to_l(torch.from_numpy(np.array(as_float.get_frame(0)[0])).clamp(0, 1))

    luma = Luma(clip, props)

    assert torch.equal(luma.L(luma.clip.get_frame(0))[0, 0], expected)


def _lab(frame: vs.VideoFrame) -> np.ndarray:
    from skimage.color import rgb2lab
    scale = 1.0 if frame.format.sample_type == vs.FLOAT else float((1 << frame.format.bits_per_sample) - 1)
    rgb = np.stack([np.asarray(frame[p]) for p in range(3)], -1).astype(np.float64) / scale
    return rgb2lab(rgb.clip(0, 1))


def test_gray_input_takes_out_format(run, bikes):
    clip = core.resize.Point(rgb_clip(bikes[:1]), format=vs.GRAY8, matrix_s="709")
    out = run(clip, bikes[0], out_format=vs.YUV444P8)
    assert out.format.id == vs.YUV444P8
    assert np.array_equal(np.asarray(out.get_frame(0)[0]), np.asarray(clip.get_frame(0)[0]))


def test_colour_props_follow_the_clip_else_defaults(run, bikes):
    hd = core.resize.Bicubic(rgb_clip(bikes[:1]), width=1280, height=720, format=vs.GRAY8, matrix_s="709")
    props = run(hd, bikes[0]).get_frame(0).props
    assert (props["_Matrix"], props["_Transfer"], props["_Primaries"]) == (1, 1, 1)
    assert props["_Range"] == vs.RANGE_LIMITED
    sd = core.std.RemoveFrameProps(core.resize.Point(rgb_clip(bikes[:1]), format=vs.GRAY8, matrix_s="709"),
                                   ["_Matrix", "_Transfer", "_Primaries", "_Range", "_ColorRange"])
    props = run(sd, bikes[0]).get_frame(0).props
    assert (props["_Matrix"], props["_Transfer"], props["_Primaries"]) == (6, 6, 6)
    full = core.std.SetFrameProps(yuv_clip(bikes[:1]), _Matrix=5, _Range=vs.RANGE_FULL)
    props = run(full, bikes[0]).get_frame(0).props
    assert (props["_Matrix"], props["_Range"]) == (5, vs.RANGE_FULL)


def test_any_aspect_ratio_keeps_the_full_frame(run, bikes):
    tall = core.resize.Bicubic(yuv_clip(bikes[:1]), width=40, height=90)
    out = run(tall, bikes[0])
    assert (out.width, out.height) == (40, 90)
    assert np.array_equal(np.asarray(out.get_frame(0)[0]), np.asarray(tall.get_frame(0)[0]))


# --- exactness -----------------------------------------------------------------------

def test_every_request_order_gives_the_bytes_of_an_in_order_render(run, bikes):
    clip = yuv_clip(bikes)
    n = clip.num_frames
    expected = render(run(clip, bikes[0], batch=3, cache_frames=2, checkpoint_every=4), range(n))
    assert len(set(expected.values())) == n  # frames differ, so equality below means something
    reverse = render(run(clip, bikes[0], batch=3, cache_frames=2, checkpoint_every=4), reversed(range(n)))
    shuffled = list(range(n))
    random.Random(7).shuffle(shuffled)
    rand = render(run(clip, bikes[0], batch=3, cache_frames=2, checkpoint_every=4), shuffled + shuffled[:4])
    assert reverse == expected
    assert rand == expected

    out = run(clip, bikes[0], batch=3, cache_frames=2, checkpoint_every=4)
    futures: list[Future] = [out.get_frame_async(k) for k in shuffled]
    concurrent = {k: frame_bytes(f.result()) for k, f in zip(shuffled, futures)}
    assert concurrent == expected


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_every_frame_asked_at_once_on_one_thread_comes_with_the_bytes_of_an_in_order_render(seed):
    # Dense automatic keyframes leave many requests' plans stale, so callbacks read frames
    # themselves; a read made under the engine's lock hung these orders for good.
    script = Path(__file__).with_name("all_at_once.py")
    done = subprocess.run([sys.executable, str(script), str(seed)], cwd=script.parent, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.strip() == "same bytes"


def test_frames_requested_from_many_threads_are_exact(run, bikes):
    clip = yuv_clip(bikes[:8])
    expected = render(run(clip, bikes[0]), range(8))
    out = run(clip, bikes[0])
    got: dict[int, bytes] = {}

    def worker(frames):
        for k in frames:
            got[k] = frame_bytes(out.get_frame(k))

    threads = [threading.Thread(target=worker, args=(fr,)) for fr in ([7, 1, 4], [3, 6, 0], [5, 2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_no_frame_is_read_from_inside_a_frame_callback_in_order_or_after_seeks(run, bikes, bunny, monkeypatch):
    # VapourSynth has left a get_frame called from inside a frame callback stalled for good
    # when its frame cache was small. An output frame brings along as dependencies the
    # frames the filter reads for it, and after a seek the outputs it resumes from.
    reads = []
    original = vsexcolor.filter.frame_requests.Source._read
    monkeypatch.setattr(vsexcolor.filter.frame_requests.Source, "_read", lambda self, clip, n: reads.append(n) or original(self, clip, n))
    joined = yuv_clip(bikes[:5]) + yuv_clip(bunny[:5])  # a cut inside a batch
    for ref, kwargs in ((bikes[0], {"batch": 3}), (bikes[0], {"batch": 1}), (None, {"propagate": True})):
        render(run(joined, ref, **kwargs), range(10))
    assert reads == []
    there_and_back = yuv_clip(bikes) + yuv_clip(bikes[::-1])  # 24 frames, one scene
    small = {"cache_frames": 2, "checkpoint_every": 5, "checkpoints": 2}
    seeks = [21, 3, 17, 9, 23, 0, 12, 13, 14, 6]
    stepping_back = list(range(20, 14, -1))  # a previewer's "previous frame", again and again
    for ref, kwargs in ((bikes[0], small), (None, {"propagate": True, **small})):
        expected = render(run(there_and_back, ref, **kwargs), range(24))
        for order in (seeks, stepping_back):
            assert render(run(there_and_back, ref, **kwargs), order) == {n: expected[n] for n in order}
    assert reads == []


def test_the_finish_of_a_frame_runs_beside_the_recurrence_of_the_next(bikes, monkeypatch):
    # VapourSynth runs a frame callback on one thread at a time; the recurrence and the
    # finish are two callbacks so that an in-order render keeps two threads busy.
    from vsexcolor.backends.propagate import PropagateBackend

    steps, second_step, waited = [], threading.Event(), []
    step, finish_rgb = PropagateBackend.step, vsexcolor.filter.nodes.finish_rgb

    def counting_step(self, *args):
        steps.append(1)
        if len(steps) == 2:
            second_step.set()
        return step(self, *args)

    def waiting_finish(*args):
        if not waited:
            waited.append(second_step.wait(10))
        return finish_rgb(*args)

    monkeypatch.setattr(PropagateBackend, "step", counting_step)
    monkeypatch.setattr(vsexcolor.filter.nodes, "finish_rgb", waiting_finish)
    threads = core.num_threads
    core.num_threads = 2
    try:
        clip = vsexcolor.colorize(yuv_clip(bikes[:4]), bikes[0], backend="propagate", pixels=PIXELS)
        assert len(list(clip.frames(prefetch=2))) == 4
    finally:
        core.num_threads = threads
    assert waited == [True], "frame 1 was not stepped while frame 0 was being finished"


# --- scenes and references --------------------------------------------------------------

def test_a_first_request_deep_into_a_clip_reads_only_frames_near_its_scene(bikes, bunny):
    # Scenes of 100 frames alternate between two shots; each request below is the first
    # of a fresh node, 10 frames after a cut, as `--start` or a farm's late chunk makes it.
    shots = (yuv_clip(bikes[:1]) * 100 + yuv_clip(bunny[:1]) * 100) * 10
    reads: list[int] = []
    counted = core.std.ModifyFrame(shots, shots, lambda n, f: reads.append(n) or f)
    read_for = {}
    for n in (210, 1910):
        out = vsexcolor.colorize(counted, bikes[0], backend="propagate", pixels=PIXELS)
        reads.clear()
        frame = frame_bytes(out.get_frame(n))
        read_for[n] = sorted(set(reads))
        # The same bytes as when its scene is rendered from its start.
        fresh = vsexcolor.colorize(shots, bikes[0], backend="propagate", pixels=PIXELS)
        assert frame == render(fresh, range(n - 10, n + 1))[n]
    # The cut 10 frames back is found, and nothing before the batch that steps from it is read.
    assert len(read_for[210]) == len(read_for[1910]) <= 10 + 20
    assert read_for[1910] == [k + 1700 for k in read_for[210]]
    assert min(read_for[1910]) >= 1900 - SEEK_STEP - 4



def test_a_scene_cut_restarts_the_recurrence_there_and_only_there(run, bikes, bunny):
    first, second = yuv_clip(bikes[:6]), yuv_clip(bunny[:6])
    joined = first + second
    out = run(joined, bikes[0], batch=2)
    starts = [out.get_frame(n).props[PROP_SCENE_START] for n in range(12)]
    assert starts == [0] * 6 + [6] * 6
    # After the cut, the output is that of the second scene colorized on its own.
    alone = run(second, bikes[0], batch=2)
    assert render(out, range(6, 12)) == {6 + k: v for k, v in render(alone, range(6)).items()}
    # Before it, that of the first scene alone.
    assert render(out, range(6)) == render(run(first, bikes[0], batch=2), range(6))


def test_upstream_scene_change_props_are_honoured(run, bikes):
    clip = yuv_clip(bikes[:6])
    marked = core.std.SetFrameProps(clip, _SceneChangePrev=0)
    marked = marked[:3] + core.std.SetFrameProps(clip[3], _SceneChangePrev=1) + marked[4:]
    starts = [run(marked, bikes[0]).get_frame(n).props[PROP_SCENE_START] for n in range(6)]
    assert starts == [0, 0, 0, 3, 3, 3]


def test_scenes_false_never_restarts(run, bikes, bunny):
    joined = yuv_clip(bikes[:3]) + yuv_clip(bunny[:3])
    out = run(joined, bikes[0], scenes=False)
    assert [out.get_frame(n).props[PROP_SCENE_START] for n in range(6)] == [0] * 6


@pytest.mark.parametrize("reference", ["exemplar", "keyframe"])
def test_scenes_false_makes_the_clip_one_shot_of_its_first_reference_wherever_it_is(run, bikes, bunny, reference):
    # Where shots without a reference get automatic keyframes (here from a clip of them), a
    # reference after frame 0 must still serve the one shot from its first frame.
    from vsexcolor.filter import PROP_KEYFRAME

    joined = yuv_clip(bikes[:3]) + yuv_clip(bunny[:3])
    keyframe = reference == "keyframe"
    out = run(joined, {4: bunny[1] if keyframe else bikes[0]}, scenes=False, propagate=keyframe,
              keyframe_clip=yuv_clip(np.concatenate([bikes[:3], bunny[:3]])))
    assert [out.get_frame(n).props[PROP_REFERENCE] for n in range(6)] == [0] * 6
    assert [out.get_frame(n).props[PROP_KEYFRAME] for n in range(6)] == ([4] * 6 if keyframe else [-1] * 6)


# --- a scene clip: cuts found on a cheaper clip showing the same pictures ------------------------

def test_cuts_are_found_on_the_scene_clip_where_one_is_given(run, bikes, bunny):
    joined = yuv_clip(bikes[:6]) + yuv_clip(bunny[:6])
    elsewhere = yuv_clip(bikes[:9]) + yuv_clip(bunny[:3])
    out = run(joined, bikes[0], batch=2, scene_clip=elsewhere)
    assert [out.get_frame(n).props[PROP_SCENE_START] for n in range(12)] == [0] * 9 + [9] * 3


def test_a_scene_clip_of_the_same_pictures_gives_the_same_bytes_in_any_order_without_reading_in_a_callback(
        run, bikes, bunny, monkeypatch):
    reads = []
    original = vsexcolor.filter.frame_requests.Source._read
    monkeypatch.setattr(vsexcolor.filter.frame_requests.Source, "_read", lambda self, clip, n: reads.append(n) or original(self, clip, n))
    joined = yuv_clip(bikes[:5]) + yuv_clip(bunny[:5])
    expected = render(run(joined, bikes[0], batch=3), range(10))
    same_pictures = core.std.SetFrameProps(joined, Source="decoded")  # another node
    for order in (range(10), [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]):
        out = run(joined, bikes[0], batch=3, scene_clip=same_pictures)
        assert render(out, order) == {n: expected[n] for n in order}
    assert reads == []


def test_planning_reads_the_weights_for_their_digest_but_loads_no_network(run, devc_weights, bikes, monkeypatch):
    import hashlib

    from vsexcolor.filter import recording
    from vsexcolor.weights import devc

    clip = yuv_clip(bikes[:4])
    monkeypatch.setattr(devc, "torch_load", lambda *args: pytest.fail("planning loaded a checkpoint file"))
    with recording(planning=True) as found:
        planned = run(clip, bikes[0])
    assert [planned.get_frame(n).props[PROP_BACKEND] for n in range(4)] == ["devc"] * 4
    files = [devc_weights / name for name in devc._checkpoint(devc_weights).files]
    assert [(f.backend, f.weights_sha256) for f in found] == \
        [("devc", hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest())]


def test_weights_found_but_not_loadable_stop_a_render_in_one_line(run, devc_weights, bikes, tmp_path):
    broken = tmp_path / "weights"
    for name in devc_file_names(devc_weights):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes(b"not a checkpoint")
    with pytest.raises(vs.Error, match=r"^colorize: the DEVC weights cannot be loaded: .*not a PyTorch checkpoint.*"
                                       r"\(or pass backend='propagate'\)$"):
        run(yuv_clip(bikes[:4]), bikes[0], backend="auto", weights=broken)


def devc_file_names(folder):
    from vsexcolor.weights import devc

    return devc._checkpoint(folder).files


@pytest.mark.parametrize("references", ["folder", "folder of denoised frames", "clip of keyframes"])
def test_planning_reads_the_scene_clip_and_of_the_clip_only_what_the_scene_clip_cannot_tell(run, bikes, bunny,
                                                                                            references, tmp_path):
    from media import write_image
    from vsexcolor.filter import PROP_KEYFRAME, PROP_SHOT_START, recording
    from vsexcolor.filter.formats import colour_props, frame_rgb, to_rgbs

    source = yuv_clip(bikes[:6]) + yuv_clip(bunny[:6])
    asked = []

    def costly(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        asked.append(n)
        return f

    blurred = core.std.BoxBlur(source, hradius=2, vradius=2)  # a denoiser's output, which differs
    denoised = core.std.ModifyFrame(blurred, blurred, costly)
    ref = tmp_path / "refs"
    if references == "folder":  # frame 8 in colour, matched against the scene clip
        ref.mkdir()
        write_image(ref / "000008.png", bunny[2])
    elif references == "folder of denoised frames":  # matched against the clip: too unlike the scene clip's
        ref.mkdir()
        rgb = frame_rgb(to_rgbs(blurred, colour_props(blurred, blurred.get_frame(0).props)).get_frame(8))
        write_image(ref / "000008.png", np.round(rgb * 255).astype(np.uint8))
    else:  # the sharpest of each shot's opening frames is picked in the scene clip
        ref = None
    keyframes = yuv_clip(np.concatenate([bikes[:6], bunny[:6]])) if ref is None else None
    with recording(planning=True):
        planned = run(denoised, ref, scene_clip=source, keyframe_clip=keyframes)
    # Its first frame for its colour props, and the frame a reference did not match in the scene clip.
    assert asked == ([0, 8] if references == "folder of denoised frames" else [0])
    asked.clear()
    keys = (PROP_SCENE_START, PROP_SHOT_START, PROP_REFERENCE, PROP_KEYFRAME)
    order = [11, 4, 7, 0, 9, 2, 6, 10, 1, 8, 3, 5]
    plan = {n: [planned.get_frame(n).props[k] for k in keys] for n in order}
    assert asked == []
    rendered = run(denoised, ref, scene_clip=source, keyframe_clip=keyframes)
    assert [plan[n] for n in range(12)] == [[rendered.get_frame(n).props[k] for k in keys] for n in range(12)]
    if references == "clip of keyframes":
        assert all(plan[n][1] <= plan[n][3] < plan[n][1] + 6 for n in range(12))  # its own shot's pick
    else:
        assert plan[8][3] == 8  # taken as its frame in colour


def test_keyframe_references_restart_at_their_frames(run, bikes):
    # Forward alone: both ways, frames 1..4 take the second reference too (test_both_ways.py).
    clip = yuv_clip(bikes[:8])
    out = run(clip, {0: bikes[0], 5: bikes[7]}, batch=2, direction="forward")
    props = [out.get_frame(n).props for n in range(8)]
    assert [p[PROP_REFERENCE] for p in props] == [0] * 5 + [1] * 3
    assert [p[PROP_SCENE_START] for p in props] == [0] * 5 + [5] * 3
    tail = run(clip[5:], bikes[7], batch=2)
    assert render(out, range(5, 8)) == {5 + k: v for k, v in render(tail, range(3)).items()}
    assert render(out, range(5)) == render(run(clip, bikes[0], batch=2), range(5))


def test_propagation_mode_takes_each_scenes_first_frame_in_colour(run, bikes, bunny):
    joined = yuv_clip(bikes[:3]) + yuv_clip(bunny[:3])
    out = run(joined, None, propagate=True)
    props = [out.get_frame(n).props for n in range(6)]
    assert [p[PROP_SCENE_START] for p in props] == [0, 0, 0, 3, 3, 3]
    assert [p[PROP_REFERENCE] for p in props] == [0, 0, 0, 3, 3, 3]
    # The initial state feeds the recurrence: it changes the output of the scene's frames.
    plain = run(joined, bikes[0])
    assert frame_bytes(out.get_frame(1)) != frame_bytes(plain.get_frame(1))


def test_a_keyframe_seeds_its_own_shot_only_and_the_next_shot_starts_from_the_exemplar(run, bikes, bunny):
    first, second = yuv_clip(bikes[:4]), yuv_clip(bunny[:4])
    out = run(first + second, bikes[0], propagate=True, batch=2)
    assert [out.get_frame(n).props[PROP_SCENE_START] for n in range(8)] == [0] * 4 + [4] * 4
    assert render(out, range(4)) == render(run(first, bikes[0], propagate=True, batch=2), range(4))
    # The shot after the cut is colorized as the authors' code starts a clip: from the
    # exemplar, with no earlier frame, not with the keyframe as if it came before it.
    alone = render(run(second, bikes[0], batch=2), range(4))
    assert render(out, range(4, 8)) == {4 + k: v for k, v in alone.items()}


def test_a_single_reference_from_a_later_frame_covers_the_frames_before_it_without_a_restart(run, bikes):
    clip = yuv_clip(bikes[:8])
    out = run(clip, {5: bikes[0]}, batch=2)
    assert [out.get_frame(n).props[PROP_SCENE_START] for n in range(8)] == [0] * 8
    assert render(out, range(8)) == render(run(clip, bikes[0], batch=2), range(8))
    # A keyframe there is that frame in colour: it starts a recurrence at its frame.
    keyed = run(clip, {5: bikes[5]}, propagate=True, batch=2)
    assert [keyed.get_frame(n).props[PROP_SCENE_START] for n in range(8)] == [0] * 5 + [5] * 3


def test_a_keyframe_must_be_its_frame_in_colour_but_an_exemplar_may_be_any_size(run, bikes):
    clip = yuv_clip(bikes[:2])
    small = decode_rgb(sample_clip_path("bikes"), 1, (W // 2, H // 2))[0]
    with pytest.raises(vs.Error, match=rf"colorize: ref must be its frame in colour, {W}x{H} like the clip, "
                                       rf"to be a keyframe .* got '{W // 2}x{H // 2}'"):
        run(clip, small, propagate=True)
    assert run(clip, small).get_frame(1).props[PROP_BACKEND] == "devc"


def test_a_folder_of_references_named_by_frame_sorts_keyframes_from_exemplars(run, bikes, bunny, tmp_path):
    import cv2

    clip = yuv_clip(bikes[:6])
    refs = tmp_path / "refs"
    refs.mkdir()

    def save(name, rgb):
        cv2.imwrite(str(refs / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    save("000000.png", bikes[0])  # frame 0 itself, in colour: a keyframe
    save("ref_3.png", bunny[0])  # another picture: an exemplar from frame 3 on
    save("000004.png", np.repeat(bikes[4].mean(-1, keepdims=True).astype(np.uint8), 3, -1))  # not coloured yet
    (refs / "shots.json").write_text("{}")  # what `vsexcolor shots` wrote beside them
    with pytest.warns(UserWarning, match="vsexcolor: references in") as said:
        out = run(clip, refs, batch=2, direction="forward")  # frames 0..2 from the keyframe alone
    report = "\n".join(str(w.message) for w in said)
    assert f"references in {refs} (each serves its whole shot):" in report
    assert re.search(r"000000\.png: frame 0, keyframe \(lightness \d+\.\d dB against frame 0\)", report)
    assert re.search(r"ref_3\.png: frame 3, exemplar \(lightness \d+\.\d dB against frame 3\)", report)
    assert "not coloured, left out: 000004.png" in report
    assert [out.get_frame(n).props[PROP_SCENE_START] for n in range(6)] == [0, 0, 0, 3, 3, 3]
    assert render(out, range(3)) == render(run(clip, {0: bikes[0]}, propagate=True, batch=2, direction="forward"),
                                           range(3))


def test_every_problem_of_a_references_folder_is_named_at_once(run, bikes, tmp_path):
    import cv2

    refs = tmp_path / "refs"
    refs.mkdir()
    cv2.imwrite(str(refs / "000000.png"), cv2.cvtColor(bikes[0], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(refs / "ref_0.png"), cv2.cvtColor(bikes[0], cv2.COLOR_RGB2BGR))
    (refs / "notes.txt").write_text("colours from the costume department")
    (refs / "000002.png").write_bytes(b"not a png")
    (refs / "000003.jfif").write_bytes(b"a JPEG as a browser saves it")
    cv2.imwrite(str(refs / "000099.png"), cv2.cvtColor(bikes[0], cv2.COLOR_RGB2BGR))
    with pytest.raises(vs.Error) as raised:
        run(yuv_clip(bikes[:6]), refs)
    message = str(raised.value)
    assert "\n" not in message and "has 5 problems" in message
    for problem in ("notes.txt is not an image named by its frame number", "000000.png and ref_0.png both name frame 0",
                    "000099.png names frame 99, past the clip's last, 5",
                    "000003.jfif is no picture vsexcolor reads (.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp): save it "
                    "as one of those", "000002.png: reference image", "is not a PNG, JPEG, TIFF, WebP or BMP image"):
        assert problem in message


def test_keyframes_of_the_wrong_size_in_a_folder_are_named_at_once_with_the_rest(run, bikes, tmp_path):
    import cv2

    refs = tmp_path / "refs"
    refs.mkdir()
    for n in (1, 4):
        cv2.imwrite(str(refs / f"{n:06d}.png"), cv2.cvtColor(bikes[n][::2, ::2], cv2.COLOR_RGB2BGR))
    (refs / "notes.txt").write_text("colours from the costume department")
    with pytest.raises(vs.Error) as raised:
        run(yuv_clip(bikes[:6]), refs, propagate=True)
    message = str(raised.value)
    assert "has 3 problems" in message and "notes.txt is not an image" in message
    for n in (1, 4):
        assert (f"{n:06d}.png is {W // 2}x{H // 2}, and a keyframe (propagate=True) is its frame in colour, {W}x{H} "
                f"like the clip: resize it, or leave out propagate=True to take it as an exemplar") in message


def test_a_file_managers_files_in_a_references_folder_are_no_references_and_a_subfolder_s_are_named(
        run, bikes, tmp_path):
    import cv2

    clean, refs = tmp_path / "clean", tmp_path / "refs"
    for folder in (clean, refs):
        folder.mkdir()
        cv2.imwrite(str(folder / "000000.png"), cv2.cvtColor(bikes[0], cv2.COLOR_RGB2BGR))
    (refs / ".thumbnails").mkdir()
    for name in (".DS_Store", "._000000.png", "Thumbs.db", "desktop.ini", ".thumbnails/000000.png"):
        (refs / name).write_bytes(b"\0\0\0\1Bud1")  # Finder's, Explorer's: not images
    clip = yuv_clip(bikes[:2])
    with pytest.warns(UserWarning, match="vsexcolor: references in"):
        assert frame_bytes(run(clip, refs).get_frame(1)) == frame_bytes(run(clip, clean).get_frame(1))
    (refs / "old").mkdir()
    cv2.imwrite(str(refs / "old" / "000001.png"), cv2.cvtColor(bikes[1], cv2.COLOR_RGB2BGR))
    with pytest.raises(vs.Error, match=r"has 1 problem: old/000001\.png is not an image named by its frame number"):
        run(clip, refs)


def test_references_in_every_accepted_form(run, bikes, tmp_path):
    import cv2

    clip = yuv_clip(bikes[:1])
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), cv2.cvtColor(bikes[3], cv2.COLOR_RGB2BGR))
    by_array = frame_bytes(run(clip, bikes[3]).get_frame(0))
    assert frame_bytes(run(clip, str(path)).get_frame(0)) == by_array
    assert frame_bytes(run(clip, path).get_frame(0)) == by_array
    assert frame_bytes(run(clip, bikes[3].astype(np.float32) / 255).get_frame(0)) == by_array
    # zimg's uint8 -> float conversion rounds differently from numpy's, by a float ulp.
    from_clip = np.frombuffer(frame_bytes(run(clip, rgb_clip(bikes[3:4])).get_frame(0)), np.uint8)
    assert np.abs(from_clip.astype(int) - np.frombuffer(by_array, np.uint8)).max() <= 1
    # A clip of another format is converted to sRGB by its own props: close to the array's.
    # Only the chroma planes tell (the luma plane is the input's whatever the reference);
    # another reference (frame 11, upside down) moves them by 2.7 codes on average.
    from_yuv, from_array = run(clip, yuv_clip(bikes[3:4], vs.YUV444P16)).get_frame(0), run(clip, bikes[3]).get_frame(0)
    for p in (1, 2):
        moved = np.abs(np.asarray(from_yuv[p]).astype(int) - np.asarray(from_array[p]).astype(int))
        assert moved.max() <= 1 and moved.mean() < 0.5, p


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"backend": "magic"}, "backend must be 'auto', 'devc' or 'propagate'"),
    ({"preset": "vivid"}, "preset must be"),
    ({"saturation": -1.0}, "saturation must be in 0..4"),
    ({"smooth": 1e9}, "smooth must be in 0..10000"),
    ({"pixels": 10}, "pixels must be an int in 1024..4194304"),
    ({"scene_threshold": 2.0}, "scene_threshold must be in 0..1"),
    ({"batch": 0}, "batch must be an int in 1..64"),
    ({"cache_frames": 0}, "cache_frames must be"),
    ({"checkpoint_every": 0}, "checkpoint_every must be"),
    ({"checkpoints": 0}, "checkpoints must be"),
    ({"device": "tpu"}, "device must be"),
    ({"out_format": vs.YUV420P8}, "out_format must be None unless the clip is GRAY"),
    ({"scene_clip": "source.mkv"}, "scene_clip must be a VideoNode, got 'str'"),
])
def test_bad_parameters_are_named(run, bikes, kwargs, match):
    with pytest.raises(vs.Error, match=match):
        run(yuv_clip(bikes[:1]), bikes[0], **kwargs)


def test_bad_clips_are_rejected(run, bikes):
    with pytest.raises(vs.Error, match="clip must be a VideoNode"):
        run("clip.mkv", bikes[0])
    variable = core.std.Splice([yuv_clip(bikes[:1]), core.resize.Point(yuv_clip(bikes[:1]), 32, 32)],
                               mismatch=True)
    with pytest.raises(vs.Error, match="clip must be of constant format and size"):
        run(variable, bikes[0])
    gray = core.resize.Point(yuv_clip(bikes[:1]), format=vs.GRAY8)
    with pytest.raises(vs.Error, match="out_format must be a YUV format"):
        run(gray, bikes[0], out_format=vs.RGB24)
    with pytest.raises(vs.Error, match="clip must be YUV or RGB with colour first frames"):
        run(gray, None, propagate=True)
    with pytest.raises(vs.Error, match=r"scene_clip must be of the clip's size and length \(64x48, 1 frames\), "
                                       r"got '64x48, 2 frames'"):
        run(yuv_clip(bikes[:1]), bikes[0], scene_clip=yuv_clip(bikes[:2]))


@pytest.mark.parametrize("ref,match", [
    (None, "no colour reference was given and no DDColor keyframe model in .*vsexcolor download ddcolor"),
    ("/no/such/image.png", "ref: reference image '/no/such/image.png' does not exist"),
    (np.zeros((4, 4), np.uint8), r"ref: a reference array must have shape \(height, width, 3\)"),
    (np.zeros((0, 4, 3), np.uint8), "ref: a reference array must have shape"),
    (np.full((4, 4, 3), 2.0), r"ref: a float reference array must hold values in \[0, 1\]"),
    (np.zeros((4, 4, 3), np.int64), "ref: a reference array must be uint8, uint16 or float"),
    (42, "ref must be an image path, a folder of them, a numpy array"),
    ({}, "ref must be a non-empty mapping"),
    ({99: "x.png"}, "ref must be keyed by frame numbers in 0..0"),
])
def test_bad_references_are_named(run, bikes, ref, match):
    with pytest.raises(vs.Error, match=match):
        run(yuv_clip(bikes[:1]), ref)


def test_unreadable_reference_file(run, bikes, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(vs.Error, match="is not a PNG, JPEG, TIFF, WebP or BMP image: save it as one"):
        run(yuv_clip(bikes[:1]), junk)


def test_devc_without_weights_says_how_to_get_them(bikes, tmp_path):
    with pytest.raises(vs.Error, match="backend='devc' needs the authors' weights.*vsexcolor download"):
        vsexcolor.colorize(yuv_clip(bikes[:1]), bikes[0], backend="devc", weights=tmp_path)


# --- backends ------------------------------------------------------------------------------

def test_auto_backend_uses_devc_when_weights_are_found(run, bikes, devc_weights, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(devc_weights))
    out = vsexcolor.colorize(yuv_clip(bikes[:1]), bikes[0], pixels=PIXELS)
    assert out.get_frame(0).props[PROP_BACKEND] == "devc"
    # It is devc's output, not only its name.
    assert frame_bytes(out.get_frame(0)) == frame_bytes(run(yuv_clip(bikes[:1]), bikes[0]).get_frame(0))


def test_auto_backend_without_weights_warns_once_and_propagates(bikes, tmp_path, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="vsexcolor download") as caught:
        out = vsexcolor.colorize(yuv_clip(bikes[:3]), bikes[0], pixels=PIXELS)
        [out.get_frame(n) for n in range(3)]
    assert len(caught) == 1
    assert out.get_frame(0).props[PROP_BACKEND] == "propagate"
    propagated = vsexcolor.colorize(yuv_clip(bikes[:3]), bikes[0], backend="propagate", pixels=PIXELS)
    assert frame_bytes(out.get_frame(2)) == frame_bytes(propagated.get_frame(2))


def test_propagate_backend_is_exact_under_any_order_too(bikes):
    clip = yuv_clip(bikes)
    kwargs = dict(backend="propagate", pixels=PIXELS, batch=3, cache_frames=2, checkpoint_every=4)
    expected = render(vsexcolor.colorize(clip, bikes[0], **kwargs), range(12))
    shuffled = list(range(12))
    random.Random(3).shuffle(shuffled)
    assert render(vsexcolor.colorize(clip, bikes[0], **kwargs), shuffled) == expected


def test_output_smoothing_is_on_for_devc_and_off_for_propagate_unless_asked(run, bikes):
    clip = yuv_clip(bikes[:2])

    def output(**kwargs) -> bytes:
        return frame_bytes(run(clip, bikes[0], **kwargs).get_frame(1))

    # The propagate backend's fusion already smooths edge-aware: the output is left alone.
    assert output(backend="propagate") == output(backend="propagate", smooth=0)
    assert output(backend="propagate", smooth=500) != output(backend="propagate")
    assert output() == output(smooth=500) != output(smooth=0)
