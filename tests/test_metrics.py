"""The benchmark's metrics give their known values, and the benchmark itself runs end to end."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from vsexcolor.commands import main
from vsexcolor.color import l_to_gray
from vsexcolor.eval import benchmark, clips, metrics
from vsexcolor.filter import keyframe_rule


def texture(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random colour image, float32 RGB in [0.1, 0.9] (never clipped by small shifts)."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return 0.1 + 0.8 * smooth


def test_identical_frames_score_perfectly():
    img = texture()
    assert metrics.psnr(img, img) == math.inf
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    assert metrics.ciede2000(img, img) == pytest.approx(0.0, abs=1e-6)


def test_a_constant_shift_gives_its_psnr():
    img = texture()
    shift = 0.05
    assert metrics.psnr(img + shift, img) == pytest.approx(-20 * math.log10(shift), abs=1e-3)


def test_ciede2000_grows_with_the_colour_error():
    img = texture()
    small, large = img.copy(), img.copy()
    small[..., 0] += 0.02
    large[..., 0] += 0.08
    assert 0 < metrics.ciede2000(small, img) < metrics.ciede2000(large, img)


def test_ssim_falls_with_noise():
    img = texture()
    noisy = img + np.random.default_rng(1).normal(0, 0.05, img.shape).astype(np.float32)
    assert metrics.ssim(noisy, img) < 0.9


def test_colorfulness_is_zero_for_gray_and_known_for_a_flat_colour():
    gray = np.repeat(texture()[..., :1], 3, axis=-1)
    assert metrics.colorfulness(gray) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    # Flat: no spread, so M = 0.3 * |(mean rg, mean yb)| with rg = 255 and yb = 127.5.
    assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255.0, 127.5))


def test_js_divergence_is_zero_for_equal_and_one_bit_for_disjoint_distributions():
    p = np.array([0.5, 0.5, 0.0, 0.0])
    q = np.array([0.0, 0.0, 0.25, 0.75])
    assert metrics.js_divergence(p, p) == pytest.approx(0.0)
    assert metrics.js_divergence(p, q) == pytest.approx(1.0)
    r = np.array([0.25, 0.25, 0.25, 0.25])
    assert metrics.js_divergence(p, r) == pytest.approx(metrics.js_divergence(r, p))


def test_cdc_is_zero_for_a_still_clip_and_a_third_for_alternating_disjoint_frames():
    img = texture()
    still = [metrics.channel_histograms(img)] * 6
    assert metrics.cdc(still) == pytest.approx(0.0)
    black, white = np.zeros_like(img), np.ones_like(img)
    flicker = [metrics.channel_histograms(black if t % 2 else white) for t in range(9)]
    # Frames 1 apart differ completely (1 bit); 2 and 4 apart are equal.
    assert metrics.cdc(flicker) == pytest.approx(1.0 / 3.0)


def test_cdc_needs_two_frames():
    with pytest.raises(ValueError, match="too short"):
        metrics.cdc([metrics.channel_histograms(texture())])


def _l(rgb: np.ndarray) -> np.ndarray:
    return clips.frames_lab((rgb * 255).round().astype(np.uint8))[0].numpy()


def test_warp_error_follows_the_motion():
    big = texture(96, 128, seed=3)
    prev, cur = big[10:82, 10:106], big[10:82, 13:109]  # content moves 3 pixels left
    to_prev, valid = metrics.motion(_l(prev), _l(cur))
    assert np.median(to_prev[valid][:, 0]) == pytest.approx(3.0, abs=0.25)
    assert valid.mean() > 0.8
    followed = metrics.warp_error(prev, cur, to_prev, valid)
    assert followed < 1e-3
    # A clip whose colours do not move with the content is unstable.
    assert metrics.warp_error(prev, texture(seed=4), to_prev, valid) > 50 * followed


def test_warp_error_is_zero_for_a_still_clip():
    img = texture()
    to_prev, valid = metrics.motion(_l(img), _l(img))
    assert metrics.warp_error(img, img, to_prev, valid) == pytest.approx(0.0, abs=1e-9)


# --- the benchmark ---------------------------------------------------------------------

FRAMES = 12


@pytest.fixture(scope="module")
def carphone_report():
    return benchmark.run(["carphone_pristine"], frames=FRAMES, methods=["gray", "naive", "propagate"],
                         settings=["keyframe", "reference"], progress=lambda _: None)


def test_propagate_beats_the_gray_input_on_a_real_clip(carphone_report):
    for result in carphone_report["results"]:
        scores = result["methods"]
        assert scores["propagate"]["psnr"] > scores["gray"]["psnr"] + 3.0, result["setting"]


def test_the_report_scores_what_each_setting_promises(carphone_report):
    keyframe, reference = carphone_report["results"]
    assert keyframe["scored_frames"] == list(range(1, FRAMES))
    assert reference["scored_frames"] == list(range(FRAMES))
    # Naive propagation needs the keyframe's colours.
    assert "naive" in keyframe["methods"] and "naive" not in reference["methods"]
    for result in (keyframe, reference):
        for scores in result["methods"].values():
            assert len(scores["psnr_per_frame"]) == len(result["scored_frames"])
            assert set(scores) >= {"psnr", "ssim", "ciede2000", "psnr_first", "psnr_last", "colorfulness",
                                   "cdc", "warp_error", "fps"}
        assert result["methods"]["gray"]["colorfulness"] < 0.05  # float rounding of R = G = B
        assert result["truth"]["colorfulness"] > 5.0


def test_the_gray_baseline_outputs_the_l_channel_alone():
    clip = clips.load(clips.resolve("carphone_pristine"), 3)
    L = clips.gray_l(clip.frames)
    out = next(benchmark.colorize_directly(L, clip.frames[0] / 255.0, benchmark.make_backend("gray", "cpu"),
                                           propagate_init=False))
    expected = l_to_gray(L[0, 0]).numpy()
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=1e-4)


def test_eval_command_writes_table_json_and_plot(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    clip = clips.load(clips.resolve("carphone_pristine"), 4)
    for i, rgb in enumerate(clip.frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rgb[..., ::-1])
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    code = main(["eval", str(folder), "--frames", "4", "--methods", "gray,naive", "--settings", "keyframe",
                 "--json", str(out_json), "--plot", str(out_png)])
    assert code == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:5] == ["clip", "setting", "direction", "method", "PSNR"]
    assert {line.split()[3] for line in table.splitlines()[1:]} == {"gray", "naive", "truth"}
    report = json.loads(out_json.read_text())
    assert report["results"][0]["clip"] == "frames"
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run replaces the reports only when asked to.
    again = ["eval", str(folder), "--frames", "4", "--methods", "gray", "--settings", "keyframe",
             "--json", str(out_json), "--plot", str(out_png)]
    assert main(again) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err
    assert json.loads(out_json.read_text()) == report
    assert main([*again, "--overwrite"]) == 0
    assert json.loads(out_json.read_text())["methods"] == ["gray"]


def test_eval_command_rejects_unknown_methods_missing_clips_and_devices(tmp_path, capsys):
    assert main(["eval", "--methods", "gray,magic"]) == 2
    assert "magic" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.mp4"), "--methods", "gray"]) == 2
    assert "no such clip" in capsys.readouterr().err
    assert main(["eval", "--device", "tpu", "--methods", "gray"]) == 2
    assert "--device must be 'auto', 'cpu' or 'cuda[:N]'" in capsys.readouterr().err


def test_the_shots_setting_keys_every_shot_and_scores_each_through_the_filter(tmp_path):
    # bikes cuts to a new shot at frame 30: two shots in 36 frames, each keyed by its first frame.
    report = benchmark.run(["bikes"], frames=36, methods=["gray", "naive", "propagate"], settings=["shots"],
                           full=False, progress=lambda _: None)
    result = report["results"][0]
    assert [(s["first"], s["last"], s["length"]) for s in result["shots"]] == [(0, 29, 30), (30, 35, 6)]
    assert result["scored_frames"] == [t for t in range(36) if t not in (0, 30)]
    for shot in result["shots"]:
        # Naive propagation restarts at the shot with its keyframe: right after it, it is close.
        assert shot["naive"]["psnr"] > shot["gray"]["psnr"] + 3
        assert shot["propagate"]["psnr"] > shot["gray"]["psnr"] + 3
        assert set(shot["propagate"]) == {"psnr", "drift"}
    plot = tmp_path / "shots.png"
    benchmark.plot_psnr(report, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ntire_setting_keys_frames_0_50_and_100_and_both_ways_beats_forward_on_a_late_keyframe():
    # bikes' second shot (frames 30..59) has one keyframe, frame 50: both ways its frames
    # before it take its colours carried backward, forward they start from them as a state.
    both, forward = benchmark.run(["bikes"], frames=60, methods=["propagate"], settings=["ntire"], full=False,
                                  directions=("both", "forward"), progress=lambda _: None)["results"]
    assert (both["direction"], forward["direction"]) == ("both", "forward")
    assert both["scored_frames"] == [t for t in range(60) if t not in (0, 50)]
    assert both["keyframes"] == [0, 50]
    assert [(s["first"], s["last"]) for s in both["shots"]] == [(0, 29), (30, 59)]
    assert both["shots"][1]["propagate"]["psnr"] > forward["shots"][1]["propagate"]["psnr"]


@pytest.fixture(scope="module")
def placed_report():
    return benchmark.run(["carphone_pristine"], frames=120, methods=["gray", "propagate"], settings=["placed"],
                         full=False, directions=("both", "forward"), progress=lambda _: None)


def test_the_placed_setting_keys_a_long_shot_where_the_rule_for_long_shots_would(placed_report):
    both = placed_report["results"][0]
    fps = clips.load(clips.resolve("carphone_pristine"), 2).fps
    # One shot of 120 frames: its first frame, its last, and between them frames within the
    # rule's shortest and longest gap of each other.
    assert [(s["first"], s["last"]) for s in both["shots"]] == [(0, 119)]
    keys = both["keyframes"]
    assert keys[0] == 0 and keys[-1] == 119 and len(keys) >= 3
    for a, b in zip(keys, keys[1:]):
        assert round(keyframe_rule.MIN_GAP_S * fps) <= b - a <= round(keyframe_rule.MAX_GAP_S * fps)
    assert both["scored_frames"] == [t for t in range(120) if t not in keys]
    assert both["keyframes_per_minute"] == pytest.approx(len(keys) / (120 / fps / 60))


def test_a_long_shot_s_drift_is_reported_and_both_ways_holds_its_colour_better(placed_report):
    both, forward = (next(r for r in placed_report["results"] if r["direction"] == d) for d in ("both", "forward"))
    # The baselines have no direction: they run once.
    assert set(both["methods"]) == {"gray", "propagate"} and set(forward["methods"]) == {"propagate"}
    for result in (both, forward):
        shot = result["shots"][0]["propagate"]
        assert result["methods"]["propagate"]["shot_drift"] == pytest.approx(shot["drift"])
    assert both["methods"]["propagate"]["psnr"] > forward["methods"]["propagate"]["psnr"]


def test_figures_are_averaged_per_clip_then_over_clips():
    results = [{"clip": clip, "setting": "shots", "direction": "both", "keyframes_per_minute": kpm,
                "methods": {"propagate": {"psnr": psnr, "psnr_per_frame": [psnr] * frames}}}
               for clip, psnr, frames, kpm in (("a", 30.0, 100, 2.0), ("b", 40.0, 10, 4.0))]
    # A clip of 10 frames counts as much as one of 100: the mean of the clips' means.
    assert benchmark.over_clips(results) == [{"setting": "shots", "direction": "both", "method": "propagate",
                                              "clips": 2, "psnr": 35.0, "keyframes_per_minute": 3.0}]
    report = {"results": results, "over_clips": benchmark.over_clips(results)}
    mean_row = benchmark.table(report).splitlines()[-1].split()
    assert mean_row[:5] == ["mean", "shots", "both", "propagate", "35.00"] and "3.0" in mean_row
