"""Training settings: one dataclass tree, read from a TOML or JSON file.

Every setting has the authors' value as its default where they published one (train.py of
their repository); see ``examples/train_finetune.toml`` for a commented file. Unknown keys
and values of the wrong type are rejected by name. Relative paths are taken from the folder
of the config file, not from the working directory.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.flow import Preset as FlowPreset
from ..models.discriminator import VideoDiscriminator

Precision = Literal["auto", "fp32", "bf16", "fp16"]

# Field metadata marking settings that hold paths (resolved against the config file's folder).
_PATH = {"path": True}
# The networks need sizes divisible by 8 (three halvings in the colorization subnet) and
# VGG's relu5_2 (1/16) must keep at least 2 x 2 positions.
_MULTIPLE = 8
_MIN_SIZE = 32


class ConfigError(ValueError):
    """A setting is unknown, missing, of the wrong type or out of range; the message names it."""


@dataclass
class DataConfig:
    """What to train on and how samples are made (see :mod:`vsexcolor.train.data`)."""

    #: Colour videos: files, or folders searched recursively.
    videos: list[str] = field(default_factory=list, metadata=_PATH)
    #: Colour still images for the images-only mode (the second frame is a known warp of the first).
    images: list[str] = field(default_factory=list, metadata=_PATH)
    #: External colour reference images; without them every reference comes from the sample's own clip.
    references: list[str] = field(default_factory=list, metadata=_PATH)
    #: Training resolution [height, width] in pixels (the authors train at 216 x 384).
    size: tuple[int, int] = (216, 384)
    #: Chance that a sample takes an external reference when ``references`` are given.
    external_reference_probability: float = 0.7
    #: A same-clip reference is at least this many frames away from the pair (else the farthest frame).
    reference_min_gap: int = 25
    #: Range of the area fraction of the random crop that augments a same-clip reference.
    reference_crop: tuple[float, float] = (0.8, 1.0)
    #: Images-only mode: largest rotation (degrees), shift (fraction of the size) and zoom (fraction).
    max_rotation: float = 5.0
    max_shift: float = 0.05
    max_zoom: float = 0.05
    #: DIS optical-flow preset for real frame pairs.
    flow_preset: FlowPreset = "medium"
    #: DataLoader worker processes per training process (0 loads in the training process).
    workers: int = 4


@dataclass
class ModelConfig:
    """How the networks run in training."""

    #: Softmax temperature of the differentiable correspondence (the authors train with 0.01).
    temperature: float = 0.01
    #: Standard deviation of Gaussian noise added to the input L (CIE L units), as the authors do.
    luminance_noise: float = 2.0
    #: Spectral normalisation of the generator's convolutions (the discriminator always has it).
    spectral_norm: bool = True
    #: Channels of the discriminator's first convolution.
    discriminator_width: int = 64


@dataclass
class LossConfig:
    """Weights of the loss terms (0 switches a term off) and their parameters."""

    l1: float = 2.0
    perceptual: float = 0.001
    contextual: float = 0.2
    #: Contextual-loss weights of VGG relu5_2, relu4_2 and relu3_2.
    contextual_layers: tuple[float, float, float] = (8.0, 4.0, 2.0)
    contextual_bandwidth: float = 0.1
    smoothness: float = 5.0
    #: Colour-distance scale of the smoothness weights (squared Lab units).
    smoothness_alpha: float = 10.0
    adversarial: float = 0.2
    temporal: float = 0.02


@dataclass
class OptimConfig:
    """Adam settings and learning-rate schedule (the authors' values)."""

    lr_warpnet: float = 1e-5
    lr_colornet: float = 2e-4
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-5
    amsgrad: bool = True
    #: Steps of linear learning-rate warm-up from 0.
    warmup_steps: int = 0
    #: Multiply the learning rates by ``decay_factor`` every this many steps; 0 keeps them constant.
    decay_every: int = 0
    decay_factor: float = 0.1


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    #: Folder for checkpoint.pt, log.jsonl and the exported weights/ (created).
    out_dir: str = field(metadata=_PATH)
    #: Fine-tune from this DEVC checkpoint (zip or unpacked folder, as ``vsexcolor download`` gives).
    init_weights: str | None = field(default=None, metadata=_PATH)
    #: Train from scratch: VGG19 weights only (``vgg19_conv.pth`` or a folder holding ``data/vgg19_conv.pth``).
    vgg_weights: str | None = field(default=None, metadata=_PATH)
    steps: int = 10000
    #: Samples per step and process; with ``torchrun`` the global batch is this times WORLD_SIZE.
    batch_size: int = 8
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N`` (one process only).
    device: str = "auto"
    #: ``auto`` is bf16 (or fp16 where bf16 is missing) autocast on CUDA and fp32 on the CPU.
    precision: Precision = "auto"
    log_every: int = 10
    #: Steps between checkpoints and weight exports (the last step always gets both).
    checkpoint_every: int = 500
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, tuples, numbers, strings) that :func:`from_dict` reads back."""
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a ``.toml`` or ``.json`` config file.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or value out of range.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror or e}") from e
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {e}") from e
    return from_dict(raw, base=path.parent, source=str(path))


def from_dict(raw: Any, base: Path = Path("."), source: str = "config") -> TrainConfig:
    """Build and check a :class:`TrainConfig` from plain data; relative paths are joined to ``base``."""
    config = _build(TrainConfig, raw, "", source)
    _resolve_paths(config, base)
    _check(config, source)
    return config


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    section = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {section} must be a table of settings, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{source}: unknown setting {prefix + key!r}; {section} takes "
                              f"{', '.join(sorted(fields))}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _value(hints[name], raw[name], prefix + name, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: the setting {prefix + name!r} is required")
    return cls(**values)


def _value(tp: Any, value: Any, name: str, source: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, name + ".", source)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is types.UnionType:  # X | None: TOML cannot say null, JSON can
        return None if value is None else _value(args[0], value, name, source)
    ok = {
        bool: lambda: isinstance(value, bool),
        int: lambda: isinstance(value, int) and not isinstance(value, bool),
        float: lambda: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: lambda: isinstance(value, str),
    }
    if tp in ok:
        if not ok[tp]():
            raise ConfigError(f"{source}: {name!r} must be {_describe(tp)}, got {value!r}")
        return float(value) if tp is float else value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {name!r} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is list or origin is tuple:
        # Tuples too: a config that went through to_dict() holds them.
        if not isinstance(value, (list, tuple)) or (origin is tuple and len(value) != len(args)):
            raise ConfigError(f"{source}: {name!r} must be {_describe(tp)}, got {value!r}")
        kinds = args if origin is tuple else args * len(value)
        items = [_value(t, v, f"{name}[{i}]", source) for i, (t, v) in enumerate(zip(kinds, value))]
        return tuple(items) if origin is tuple else items
    raise TypeError(f"no config reader for {tp!r}")  # a programming error, not a user's


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return f"a list of {_PLURALS[args[0]]}"
    if origin is tuple:
        return f"a list of {len(args)} {_PLURALS[args[0]]}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _resolve_paths(config: Any, base: Path) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _resolve_paths(value, base)
        elif f.metadata.get("path") and value is not None:
            setattr(config, f.name, [_join(base, p) for p in value] if isinstance(value, list) else _join(base, value))


def _join(base: Path, path: str) -> str:
    return str(base / Path(path).expanduser())  # an absolute path replaces base


def _check(c: TrainConfig, source: str) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {message}")

    need(c.init_weights is not None or c.vgg_weights is not None,
         "set init_weights (a DEVC checkpoint, to fine-tune) or vgg_weights (VGG19 weights only, "
         "to train from scratch)")
    need(c.init_weights is None or c.vgg_weights is None,
         "set only one of init_weights and vgg_weights: a DEVC checkpoint already holds the VGG19 weights")
    need(bool(c.data.videos or c.data.images), "data.videos or data.images must name at least one file or folder")
    for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
        need(getattr(c, name) >= 1, f"{name} must be at least 1, got {getattr(c, name)}")
    need(c.device == "auto" or c.device == "cpu" or c.device.split(":")[0] == "cuda",
         f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}")
    h, w = c.data.size
    need(min(h, w) >= _MIN_SIZE and h % _MULTIPLE == 0 and w % _MULTIPLE == 0,
         f"data.size must be multiples of {_MULTIPLE} of at least {_MIN_SIZE}, got {list(c.data.size)}")
    need(c.loss.adversarial == 0 or min(h, w) >= VideoDiscriminator.min_size,
         f"the adversarial loss needs data.size of at least {VideoDiscriminator.min_size} in both "
         f"dimensions (the discriminator halves the frames six times); got {list(c.data.size)}. "
         f"Raise data.size or set loss.adversarial = 0")
    need(0 <= c.data.external_reference_probability <= 1, "data.external_reference_probability must be in [0, 1]")
    low, high = c.data.reference_crop
    need(0 < low <= high <= 1, f"data.reference_crop must satisfy 0 < low <= high <= 1, got {[low, high]}")
    for name in ("reference_min_gap", "workers"):
        need(getattr(c.data, name) >= 0, f"data.{name} must not be negative")
    for name in ("max_rotation", "max_shift", "max_zoom"):
        need(getattr(c.data, name) >= 0, f"data.{name} must not be negative")
    need(c.data.max_zoom < 1, "data.max_zoom must be below 1")
    need(c.model.temperature > 0, "model.temperature must be positive")
    need(c.model.luminance_noise >= 0, "model.luminance_noise must not be negative")
    need(c.model.discriminator_width >= 1, "model.discriminator_width must be at least 1")
    for f in dataclasses.fields(LossConfig):
        values = getattr(c.loss, f.name)
        need(all(v >= 0 for v in (values if isinstance(values, tuple) else (values,))),
             f"loss.{f.name} must not be negative")
    need(any((c.loss.l1, c.loss.perceptual, c.loss.contextual, c.loss.smoothness, c.loss.adversarial,
              c.loss.temporal)), "every [loss] weight is 0; switch on at least one loss term")
    need(c.loss.contextual_bandwidth > 0 and c.loss.smoothness_alpha > 0,
         "loss.contextual_bandwidth and loss.smoothness_alpha must be positive")
    for name in ("lr_warpnet", "lr_colornet", "lr_discriminator", "eps", "warmup_steps", "decay_every"):
        need(getattr(c.optim, name) >= 0, f"optim.{name} must not be negative")
    need(all(0 <= b < 1 for b in c.optim.betas), "optim.betas must be in [0, 1)")
    need(0 < c.optim.decay_factor <= 1, "optim.decay_factor must be in (0, 1]")
