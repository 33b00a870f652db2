"""The DEVC training loop: one config in; checkpoints, logs and exported weights out.

``train(config)`` runs a plain loop of optimisation steps. Each step colorizes a batch of
frame pairs (frame t-1, then frame t fed the prediction of t-1, as at inference), updates the
video discriminator, then the generator (WarpNet + ColorVidNet) on the weighted losses of
:mod:`vsexcolor.train.losses`. VGG19 stays frozen.

Files in ``out_dir``:

* ``checkpoint.pt``: one dict (``format``, ``step``, ``config``, ``model`` states,
  ``optimizer`` states, ``scaler``) written atomically every ``checkpoint_every`` steps. The
  random state needs no saving: every step reseeds torch from (seed, step, rank) and sample n
  is a function of (seed, n), so a resumed run repeats an uninterrupted one bit for bit.
* ``weights/``: the official layout (``data/vgg19_conv.pth``,
  ``checkpoints/<out_dir name>/{nonlocal_net,colornet}_iter_<step>.pth``), which
  :func:`vsexcolor.weights.devc.load_nets` and the filter read; only the latest export is kept.
* ``log.jsonl``: one JSON object per line (``event`` start, step, checkpoint or end), and
  TensorBoard event files under ``tensorboard/`` when the tensorboard package is installed.

Several GPUs: launch with ``torchrun --nproc_per_node=N -m vsexcolor train --config FILE``;
each process reads RANK, WORLD_SIZE and LOCAL_RANK, gradients are averaged by
DistributedDataParallel (NCCL on CUDA, gloo on the CPU), and rank 0 writes the files.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from ..backends.devc import centre
from ..color import L_CENTER, l_to_vgg_rgb, lab_to_rgb
from ..backends.correspondence import match
from ..models import ColorVidNet, VGG19Features, WarpNet
from ..models.discriminator import VideoDiscriminator
from ..weights.devc import VGG_FILE, WeightsError, load_nets
from . import losses
from .checkpointing import (checkpoint_dict, export_weights, load_states, refuse_overwrite,
                            resume_state, save_atomic)
from .config import ConfigError, LossConfig, OptimConfig, TrainConfig
from .data import PairDataset, StepSampler, worker_init
from .spectral import add_spectral_norm

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
WEIGHTS = "weights"


@dataclass(frozen=True)
class Process:
    """This process's place in a (possibly single-process) run, from torchrun's variables."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Process":
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError as e:
            raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({e}); "
                              f"launch several processes with torchrun") from e

    @property
    def main(self) -> bool:
        return self.rank == 0


class PairColorizer(nn.Module):
    """The generator run over a pair of frames, differentiably: what the losses train.

    ``forward(lab, reference)`` takes ``lab`` [N, 2, 3, H, W] (frames t-1 and t, of which only
    L is used) and ``reference`` [N, 3, H, W] (Lab; L 0..100, ab raw), and returns the
    predicted ab [N, 2, 2, H, W] of both frames and the reference's VGG features (no
    gradient). Frame t-1 starts from an empty previous frame; frame t gets t-1's true L with
    its predicted ab, and gradients flow through that recurrence. Matching is the soft
    (softmax) correspondence at ``temperature``, in float32 even under autocast.

    VGG is held here (frozen) so that DistributedDataParallel wraps one module with one forward.
    """

    def __init__(self, vgg: VGG19Features, warpnet: WarpNet, colornet: ColorVidNet, *, temperature: float,
                 luminance_noise: float, amp_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.vgg, self.warpnet, self.colornet = vgg.requires_grad_(False).eval(), warpnet, colornet
        self.temperature, self.luminance_noise, self.amp_dtype = temperature, luminance_noise, amp_dtype

    def autocast(self) -> AbstractContextManager:
        return _autocast(self.amp_dtype, next(self.warpnet.parameters()).device)

    def forward(self, lab: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # Spectral norm (if any) then runs its power iteration once per step, not once per use.
        with parametrize.cached():
            reference_rgb = lab_to_rgb(reference)
            with torch.no_grad(), self.autocast():
                reference_features = self.vgg(reference_rgb)
            with self.autocast():
                reference_embedding = self.warpnet.phi(self.warpnet.embed(*reference_features[1:])).float()
            pooled = F.avg_pool2d(centre(reference), 4)
            last = torch.zeros_like(reference)
            predictions = []
            for frame in lab.unbind(1):
                L = frame[:, :1]
                L_in = L + self.luminance_noise * torch.randn_like(L)
                with torch.no_grad(), self.autocast():
                    features = self.vgg(l_to_vgg_rgb(L_in))
                with self.autocast():
                    embedding = self.warpnet.theta(self.warpnet.embed(*features[1:])).float()
                m = match(embedding, reference_embedding, pooled, mode="soft", temperature=self.temperature)
                warped_ab = F.interpolate(m.values[:, 1:], scale_factor=4, mode="nearest")
                similarity = F.interpolate(m.similarity, scale_factor=4, mode="nearest")
                with self.autocast():
                    ab = self.colornet(torch.cat((L_in - L_CENTER, warped_ab, similarity, last), 1)).float()
                last = torch.cat((L - L_CENTER, ab), 1)
                predictions.append(ab)
        return torch.stack(predictions, 1), [f.float() for f in reference_features]


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train as ``config`` says; returns the folder of the exported weights.

    Args:
        config: the settings (see :mod:`vsexcolor.train.config`).
        resume: continue from ``out_dir/checkpoint.pt`` (its step, states and random stream)
            instead of starting; the current config's steps, rates and loss weights apply.

    Raises:
        ConfigError, DataError, WeightsError, CheckpointError: with what to do about it.
    """
    process = Process.from_env()
    device = _device(config.device, process)
    amp_dtype = _amp_dtype(config.precision, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and the current-device default must agree per process
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
    if process.world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _run(config, resume, process, device, amp_dtype)
    finally:
        if process.world > 1:
            dist.destroy_process_group()


def _run(config: TrainConfig, resume: bool, process: Process, device: torch.device,
         amp_dtype: torch.dtype | None) -> Path:
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT
    state = None
    if resume:
        state = resume_state(checkpoint_path, config, device)
    else:
        refuse_overwrite(checkpoint_path)
    start = state["step"] if state else 0
    dataset = PairDataset(config.data, config.seed)
    vgg, warpnet, colornet, discriminator = _build_nets(config, device)
    nets = (warpnet, colornet, discriminator)
    opt_g, opt_d = _optimisers(config.optim, warpnet, colornet, discriminator)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if state:
        load_states(state, checkpoint_path, nets, opt_g, opt_d, scaler)
    colorizer: nn.Module = PairColorizer(vgg, warpnet, colornet, temperature=config.model.temperature,
                                         luminance_noise=config.model.luminance_noise, amp_dtype=amp_dtype)
    judge: nn.Module = discriminator
    if process.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        colorizer = DistributedDataParallel(colorizer, device_ids=ids)
        judge = DistributedDataParallel(judge, device_ids=ids)
    loader = DataLoader(dataset, batch_size=config.batch_size,
                        sampler=StepSampler(start, config.steps, config.batch_size, process.rank, process.world),
                        num_workers=config.data.workers, pin_memory=device.type == "cuda", worker_init_fn=worker_init)
    weights_dir = out_dir / WEIGHTS
    log = _Log(out_dir, config.steps) if process.main else None
    try:
        _emit(log, {"event": "start", "step": start, "world_size": process.world, "device": str(device),
                    "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
                    "data": dataset.describe(), "config": config.to_dict()})
        if start >= config.steps:
            _say(process, f"the checkpoint is at step {start}, not below steps = {config.steps}; nothing to train")
        began, done = time.perf_counter(), start
        for step, batch in enumerate(loader, start):
            torch.manual_seed(_step_seed(config.seed, step, process.rank))
            rates = _set_rates(config.optim, step, opt_g, opt_d)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            values = _train_step(batch, colorizer, judge, opt_g, opt_d, scaler, config.loss, vgg)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                values = _mean_over_processes(values, process)
                elapsed = time.perf_counter() - began
                _emit(log, {"event": "step", "step": done, "loss": values, "lr": rates,
                            "samples_per_s": (done - start) * config.batch_size * process.world / elapsed})
            if done % config.checkpoint_every == 0 or done == config.steps:
                _check_replicas_agree(nets, process)
                if process.main:
                    save_atomic(checkpoint_dict(done, config, nets, opt_g, opt_d, scaler), checkpoint_path)
                    export_weights(weights_dir, out_dir.name, done, vgg, warpnet, colornet)
                    _emit(log, {"event": "checkpoint", "step": done, "checkpoint": str(checkpoint_path),
                                "weights": str(weights_dir)})
        _emit(log, {"event": "end", "step": done, "weights": str(weights_dir)})
    finally:
        if log:
            log.close()
    return weights_dir


def _train_step(batch: dict[str, torch.Tensor], colorizer: nn.Module, judge: nn.Module,
                opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                loss_weights: LossConfig, vgg: VGG19Features) -> dict[str, torch.Tensor]:
    """One discriminator update and one generator update; returns the (detached) loss values."""
    lab = batch["lab"]
    ab, reference_features = colorizer(lab, batch["reference"])
    autocast = _unwrap(colorizer).autocast
    values = {}
    if loss_weights.adversarial:
        with autocast():
            # Real and generated pairs in one batch: one forward through DistributedDataParallel.
            real_scores, fake_scores = judge(torch.cat((_pairs(lab), _pairs(lab, ab).detach()))).float().chunk(2)
        d_loss = losses.discriminator_loss(real_scores, fake_scores)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(d_loss).backward()
        scaler.step(opt_d)
        values["discriminator"] = d_loss.detach()
    terms = _generator_terms(loss_weights, batch, ab, reference_features, vgg, _unwrap(judge), autocast)
    total = torch.stack(list(terms.values())).sum()
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(opt_g)
    scaler.update()
    return {**{k: v.detach() for k, v in terms.items()}, "total": total.detach(), **values}


def _generator_terms(w: LossConfig, batch: dict[str, torch.Tensor], ab: torch.Tensor,
                     reference_features: list[torch.Tensor], vgg: VGG19Features, discriminator: nn.Module,
                     autocast: Callable[[], AbstractContextManager]) -> dict[str, torch.Tensor]:
    """The weighted generator losses that are switched on, on frame t (temporal and adversarial: the pair).

    The discriminator runs unwrapped: the generator's gradient passes through it, and its own
    parameter gradients from this pass are discarded at its next update.
    """
    lab = batch["lab"]
    true = lab[:, 1]
    terms: dict[str, torch.Tensor] = {}
    if w.l1:
        terms["l1"] = w.l1 * losses.l1_ab(ab[:, 1], true[:, 1:], batch["same_clip"])
    if w.perceptual or w.contextual:
        predicted_rgb = lab_to_rgb(torch.cat((true[:, :1], ab[:, 1]), 1))
        with autocast():
            predicted = [f.float() for f in vgg(predicted_rgb)]
        if w.perceptual:
            true_rgb = lab_to_rgb(true)
            with torch.no_grad(), autocast():
                target = vgg(true_rgb)[-1].float()
            terms["perceptual"] = w.perceptual * losses.perceptual(predicted[-1], target)
        if w.contextual:
            terms["contextual"] = w.contextual * losses.contextual_vgg(
                predicted, reference_features, w.contextual_layers, w.contextual_bandwidth)
    if w.smoothness:
        terms["smoothness"] = w.smoothness * losses.smoothness(ab[:, 1], true, w.smoothness_alpha)
    if w.temporal:
        terms["temporal"] = w.temporal * losses.temporal(ab[:, 1], ab[:, 0], batch["flow"], batch["valid"])
    if w.adversarial:
        with autocast():
            with torch.no_grad():
                real = discriminator(_pairs(lab)).float()
            fake = discriminator(_pairs(lab, ab)).float()
        terms["adversarial"] = w.adversarial * losses.generator_adversarial(real, fake)
    return terms


def _pairs(lab: torch.Tensor, ab: torch.Tensor | None = None) -> torch.Tensor:
    """The discriminator's input [N, 6, H, W]: frame t then frame t-1 as Lab, with ``ab`` [N, 2, 2, H, W] if given."""
    if ab is None:
        return torch.cat((lab[:, 1], lab[:, 0]), 1)
    return torch.cat((lab[:, 1, :1], ab[:, 1], lab[:, 0, :1], ab[:, 0]), 1)


def _build_nets(config: TrainConfig, device: torch.device) -> tuple[VGG19Features, WarpNet, ColorVidNet,
                                                                      VideoDiscriminator]:
    """VGG19 (frozen), WarpNet and ColorVidNet (from init_weights, or fresh), a fresh discriminator."""
    torch.manual_seed(config.seed)  # fresh networks start the same in every process
    if config.init_weights is not None:
        vgg, warpnet, colornet = load_nets(config.init_weights)
    else:
        vgg, warpnet, colornet = _load_vgg(config.vgg_weights), WarpNet(), ColorVidNet()
    discriminator = VideoDiscriminator(config.model.discriminator_width)
    vgg, warpnet, colornet, discriminator = (m.to(device) for m in (vgg, warpnet, colornet, discriminator))
    if config.model.spectral_norm:
        add_spectral_norm(warpnet)
        add_spectral_norm(colornet)
    return vgg.requires_grad_(False).eval(), warpnet.train(), colornet.train(), discriminator.train()


def _load_vgg(location: str) -> VGG19Features:
    path = Path(location)
    file = path / VGG_FILE if path.is_dir() else path
    hint = "vgg_weights must be vgg19_conv.pth from the authors' checkpoint, or a folder holding data/vgg19_conv.pth"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not checkpoints
        raise WeightsError(f"cannot read VGG19 weights from {file} ({e}); {hint}") from e
    vgg = VGG19Features()
    try:
        vgg.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise WeightsError(f"{file} does not hold VGG19 weights in the authors' layout; {hint}") from e
    return vgg


def _device(setting: str, process: Process) -> torch.device:
    cuda = torch.cuda.is_available()
    if setting == "cpu" or (setting == "auto" and not cuda):
        return torch.device("cpu")
    if not cuda:
        raise ConfigError(f"device = {setting!r} but CUDA is not available; use device = \"cpu\" or \"auto\"")
    if setting in ("auto", "cuda"):
        return torch.device("cuda", process.local_rank)
    if process.world > 1:
        raise ConfigError(f"device = {setting!r} names one GPU, but this is one of {process.world} processes; "
                          f"use \"cuda\" or \"auto\" (each process takes the GPU of its LOCAL_RANK)")
    return torch.device(setting)


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32 throughout."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise ConfigError(f"precision = {precision!r} needs CUDA; use \"fp32\" or \"auto\" on the CPU")
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence((seed, step, rank)).generate_state(1)[0])


def _optimisers(optim: OptimConfig, warpnet: WarpNet, colornet: ColorVidNet,
                discriminator: VideoDiscriminator) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator (a rate per subnet, as the authors) and for the discriminator.

    The fused kernels (CPU and CUDA) take a fraction of the time of the per-tensor loop.
    """
    generator = torch.optim.Adam(
        [{"params": warpnet.parameters(), "lr": optim.lr_warpnet},
         {"params": colornet.parameters(), "lr": optim.lr_colornet}],
        betas=optim.betas, eps=optim.eps, amsgrad=optim.amsgrad, fused=True)
    discriminator_optimiser = torch.optim.Adam(discriminator.parameters(), lr=optim.lr_discriminator,
                                               betas=optim.betas, fused=True)
    return generator, discriminator_optimiser


def _lr_factor(optim: OptimConfig, step: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then step decay."""
    warmup = min(1.0, (step + 1) / optim.warmup_steps) if optim.warmup_steps else 1.0
    decay = optim.decay_factor ** (step // optim.decay_every) if optim.decay_every else 1.0
    return warmup * decay


def _set_rates(optim: OptimConfig, step: int, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer) -> dict[str, float]:
    """Set the scheduled learning rates of ``step``; returns them by network."""
    factor = _lr_factor(optim, step)
    rates = {"warpnet": optim.lr_warpnet * factor, "colornet": optim.lr_colornet * factor,
             "discriminator": optim.lr_discriminator * factor}
    warp_group, color_group = opt_g.param_groups
    warp_group["lr"], color_group["lr"], opt_d.param_groups[0]["lr"] = (
        rates["warpnet"], rates["colornet"], rates["discriminator"])
    return rates


def _mean_over_processes(values: dict[str, torch.Tensor], process: Process) -> dict[str, float]:
    stacked = torch.stack(list(values.values())).float()
    if process.world > 1:
        dist.all_reduce(stacked)
        stacked /= process.world
    return dict(zip(values, stacked.tolist()))


def _check_replicas_agree(nets: tuple[nn.Module, ...], process: Process) -> None:
    """Raise if the processes' parameters differ (DistributedDataParallel keeps them equal)."""
    if process.world == 1:
        return
    fingerprint = torch.stack([p.detach().double().sum() for net in nets for p in net.parameters()])
    gathered = [torch.empty_like(fingerprint) for _ in range(process.world)]
    dist.all_gather(gathered, fingerprint)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError("the parameters of the training processes have diverged; this is a bug, please report it")


def _say(process: Process, message: str) -> None:
    if process.main:
        print(f"vsexcolor train: {message}", file=sys.stderr)


def _emit(log: "_Log | None", record: dict[str, Any]) -> None:
    if log:
        log.write(record)


class _Log:
    """Rank 0's log: JSON lines to ``log.jsonl`` (appended on resume), a summary line per record on stderr."""

    def __init__(self, out_dir: Path, steps: int) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.steps = steps
        self.file: IO[str] = open(out_dir / LOG, "a", encoding="utf-8")
        self.board = _tensorboard(out_dir / "tensorboard")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        print(f"vsexcolor train: {self._summary(record)}", file=sys.stderr)
        if self.board and record["event"] == "step":
            for name, value in record["loss"].items():
                self.board.add_scalar(f"loss/{name}", value, record["step"])
            self.board.add_scalar("samples_per_s", record["samples_per_s"], record["step"])

    def _summary(self, record: dict[str, Any]) -> str:
        event, step = record["event"], record["step"]
        if event == "start":
            return (f"starting at step {step} of {self.steps} on {record['device']} x{record['world_size']} "
                    f"({record['precision']}); data: {record['data']}")
        if event == "step":
            losses_text = "  ".join(f"{k} {v:.4g}" for k, v in record["loss"].items())
            return f"step {step}/{self.steps}  {losses_text}  {record['samples_per_s']:.2f} samples/s"
        if event == "checkpoint":
            return f"step {step}: saved {record['checkpoint']}, exported {record['weights']}"
        return f"finished at step {step}; weights in {record['weights']}"

    def close(self) -> None:
        self.file.close()
        if self.board:
            self.board.close()


def _tensorboard(folder: Path) -> Any:
    """A TensorBoard SummaryWriter, or None when the tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
