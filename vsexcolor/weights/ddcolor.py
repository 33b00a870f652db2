"""Finding, checking, loading and downloading the DDColor checkpoints that colour keyframes.

The authors release four models, each one file ``<name>.pth`` holding a ``torch.save`` of
``{"params": state_dict, ...}`` or of the bare state dict. They live in the model folder
(:func:`~vsexcolor.weights.checkpoints.default_model_dir`) under those names; any other file that loads
into :class:`~vsexcolor.models.DDColor` can be passed by its path.
"""
from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .checkpoints import Invalid, WeightsError, as_state_dict, check_fits, default_model_dir, fill, torch_load
from .download import download_checked
from ..models import DDColor

Encoder = Literal["large", "tiny"]

# The authors' model zoo; its file names are the names in a model folder.
_ZOO = "https://huggingface.co/piddnad/DDColor-models/resolve/main"
#: The ConvNeXt each encoder setting builds, as messages name it.
ENCODER_NAMES: dict[Encoder, str] = {"large": "ConvNeXt-L", "tiny": "ConvNeXt-T"}


@dataclass(frozen=True)
class KeyframeModel:
    """One of the authors' released DDColor checkpoints."""

    name: str  #: the authors' name, e.g. ``"ddcolor_modelscope"``
    encoder: Encoder  #: the ConvNeXt it was trained with
    url: str  #: where the authors publish it

    @property
    def file_name(self) -> str:
        """Its file name in the model folder (the authors' file name)."""
        return f"{self.name}.pth"


#: The released models in order of preference: the one the authors recommend for photos outside
#: ImageNet, the one trained on artistic images too, the paper's, the light one.
KEYFRAME_MODELS: tuple[KeyframeModel, ...] = tuple(
    KeyframeModel(name, encoder, f"{_ZOO}/{name}.pth")
    for name, encoder in (("ddcolor_modelscope", "large"), ("ddcolor_artistic", "large"),
                          ("ddcolor_paper", "large"), ("ddcolor_paper_tiny", "tiny")))
#: What ``vsexcolor download ddcolor`` fetches.
DEFAULT_KEYFRAME_MODEL = KEYFRAME_MODELS[0].name

_BY_NAME = {model.name: model for model in KEYFRAME_MODELS}
_BY_FILE = {model.file_name: model for model in KEYFRAME_MODELS}
_NAMES = ", ".join(_BY_NAME)


class KeyframeModelError(WeightsError):
    """No usable DDColor checkpoint to colour keyframes; the message says what to do."""


@dataclass(frozen=True)
class KeyframeReport:
    """What :func:`describe` found out about the keyframe models."""

    looked_in: Path  #: the model folder searched
    present: tuple[str, ...]  #: the released models in it, in order of preference
    chosen: Path | None  #: the file :func:`load_keyframe_model` would use; None when there is none
    encoder: Encoder | None  #: the encoder it loads into; None when it does not load
    error: str | None  #: why it cannot be used; None when it loads

    @property
    def valid(self) -> bool:
        return self.error is None


class NothingToColourFrom(ValueError):
    """No keyframe model is wanted (``"none"``), and no reference was given either."""


def keyframe_model_for(choice: str | os.PathLike[str] | None, needed: bool) -> Path | None:
    """The keyframe model shots without a reference are coloured with: ``choice`` as for
    :func:`find_keyframe_model`, or ``"none"`` for no model. None where there is none and
    none was named: such shots then take the reference before them.

    Args:
        needed: no reference was given, so every shot needs an automatic keyframe.

    Raises:
        NothingToColourFrom: ``"none"`` where a model is ``needed``.
        KeyframeModelError: none found where one is ``needed`` or was named.
    """
    if choice == "none":
        if needed:
            raise NothingToColourFrom("no keyframe model and no reference")
        return None
    try:
        return find_keyframe_model(choice)
    except KeyframeModelError:
        if needed or choice is not None:
            raise
        return None


def find_keyframe_model(choice: str | os.PathLike[str] | None = None) -> Path:
    """The DDColor checkpoint file to colour keyframes with.

    Args:
        choice: None for the first released model present in the model folder, in the order
            of :data:`KEYFRAME_MODELS`; a released model's name (a ``str``), looked for in the
            model folder; the path of a checkpoint file; or a folder, searched like the model folder.

    Raises:
        KeyframeModelError: nothing there; the message says what to do.
    """
    if (folder := _folder(choice)) is not None:
        for model in KEYFRAME_MODELS:
            if (folder / model.file_name).is_file():
                return folder / model.file_name
        raise KeyframeModelError(f"no DDColor keyframe model in {folder}: it holds none of "
                                 f"{', '.join(_BY_FILE)}. {_ways_out()}")
    if isinstance(choice, str) and (model := _BY_NAME.get(choice)) is not None:
        path = default_model_dir() / model.file_name
        if not path.is_file():
            raise KeyframeModelError(f"no {model.file_name} in the model folder {path.parent}. "
                                     f"{_ways_out(model.name)}")
        return path
    path = Path(choice).expanduser()
    if not path.is_file():
        raise KeyframeModelError(f"no keyframe model at {path}: it is neither a file nor one of "
                                 f"{_NAMES}. {_ways_out()}")
    return path


def load_keyframe_model(choice: str | os.PathLike[str] | None = None) -> DDColor:
    """The DDColor network on the CPU in eval mode, filled strictly from the checkpoint.

    ``choice`` is as for :func:`find_keyframe_model`. The encoder is the released model's for
    its file name, else the one whose keys and shapes the state dict matches best.

    Raises:
        KeyframeModelError: the checkpoint is missing, damaged or does not fit the network.
    """
    path = find_keyframe_model(choice)
    try:
        state, encoder = _fitting_state(path)
    except Invalid as e:
        raise KeyframeModelError(f"{e}. {_load_hint(path)}") from e
    net = DDColor(encoder)
    fill(net, state, str(path))
    return net


def fingerprint(choice: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 of the checkpoint file :func:`load_keyframe_model` uses, in hex. Only the bytes
    are read, not the tensors: a render whose shots all have references never loads the model.

    Raises:
        KeyframeModelError: the checkpoint is missing or unreadable.
    """
    path = find_keyframe_model(choice)
    try:
        return _digest(path, _stamp(path))
    except Invalid as e:
        raise KeyframeModelError(f"{e}. {_load_hint(path)}") from e


def describe(choice: str | os.PathLike[str] | None = None) -> KeyframeReport:
    """The released models in the model folder (or the folder ``choice`` names) and whether the
    one :func:`load_keyframe_model` would use loads, reporting instead of raising."""
    folder = _folder(choice) or default_model_dir()
    present = tuple(model.name for model in KEYFRAME_MODELS if (folder / model.file_name).is_file())
    chosen, encoder, error = None, None, None
    try:
        chosen = find_keyframe_model(choice)
        encoder = _fitting_state(chosen)[1]
    except KeyframeModelError as e:
        error = str(e)
    except Invalid as e:
        error = f"{e}. {_load_hint(chosen)}"
    return KeyframeReport(folder, present, chosen, encoder, error)


def download_keyframe_model(name: str = DEFAULT_KEYFRAME_MODEL, url: str | None = None,
                            dest_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Download a released model to ``dest_dir/<name>.pth`` and check it.

    As for the DEVC weights, bytes go to ``<name>.pth.part`` first and an interrupted download
    resumes from it; only a part that loads strictly into DDColor with the model's encoder is
    renamed to the final name. If that model is already there and loads, nothing is downloaded.

    Args:
        name: one of :data:`KEYFRAME_MODELS`.
        url: ``http(s)://`` or ``file://`` address of the file; None means the authors' address.
        dest_dir: the model folder, created if missing; None means the default model folder.
        progress: show a progress bar and status lines on stderr.

    Returns:
        The path of the checked file.

    Raises:
        KeyframeModelError: ``name`` is not a released model.
        WeightsError: the folder is not writable, the download failed (the part is kept for a
            resume) or its content does not fit the model (the part is deleted).
    """
    if (model := _BY_NAME.get(name)) is None:
        raise KeyframeModelError(f"{name!r} is not a released DDColor model; choose one of {_NAMES}.")
    dest_dir = default_model_dir() if dest_dir is None else Path(dest_dir).expanduser()
    return download_checked(url or model.url, dest_dir / model.file_name,
                            lambda path: _fitting_state(path, model.encoder),
                            what=f"{model.name} (DDColor with {ENCODER_NAMES[model.encoder]})",
                            command=_download_command(model.name), progress=progress)


def _folder(choice: str | os.PathLike[str] | None) -> Path | None:
    """The folder to search when ``choice`` names one (None is the model folder), else None."""
    if choice is None:
        return default_model_dir()
    if isinstance(choice, str) and choice in _BY_NAME:
        return None
    path = Path(choice).expanduser()
    return path if path.is_dir() else None


def _ways_out(name: str = DEFAULT_KEYFRAME_MODEL) -> str:
    """What a user without a keyframe model can do: give references, or download ``name``."""
    return ("Pass a reference (`--ref`/`--refs` on the command line, `ref=` in colorize) "
            f"or run `{_download_command(name)}`.")


def _download_command(name: str) -> str:
    return "vsexcolor download ddcolor" + ("" if name == DEFAULT_KEYFRAME_MODEL else f" --model {name}")


def _load_hint(path: Path) -> str:
    if (model := _BY_FILE.get(path.name)) is not None:
        return f"Run `{_download_command(model.name)}` to fetch it again (it replaces a damaged file)."
    return f"Pass the path of a valid DDColor checkpoint, or one of {_NAMES}."


def check_keyframe_model(path: Path) -> None:
    """Raise :class:`KeyframeModelError` unless the checkpoint at ``path`` loads into DDColor,
    checked before a long run at the cost of its keys and shapes: the tensors of a file
    ``torch.save`` wrote as a zip (as it has since torch 1.6) are mapped, not read, and
    nothing is kept, so a driver that colours no keyframe itself holds no model."""
    try:
        _fitting_encoder(path, _read_state(path, mmap=zipfile.is_zipfile(path)))
    except Invalid as e:
        raise KeyframeModelError(f"{e}. {_load_hint(path)}") from e


def _fitting_state(path: Path, encoder: Encoder | None = None) -> tuple[Mapping[str, torch.Tensor], Encoder]:
    """The state dict in ``path`` and the encoder it fits (:func:`_fitting_encoder`).

    Raises:
        Invalid: it cannot be read or does not fit DDColor with that encoder.
    """
    state = _state_dict(path, _stamp(path))
    return state, _fitting_encoder(path, state, encoder)


def _fitting_encoder(path: Path, state: Mapping[str, torch.Tensor], encoder: Encoder | None = None) -> Encoder:
    """The encoder the state dict of ``path`` fits: ``encoder``, else the released model's
    for the file name, else the closest.

    Raises:
        Invalid: it does not fit DDColor with that encoder.
    """
    if encoder is None:
        released = _BY_FILE.get(path.name)
        encoder = released.encoder if released is not None else _closest_encoder(state)
    check_fits(_shapes(encoder), state, str(path), f"DDColor with {ENCODER_NAMES[encoder]}")
    return encoder


def _closest_encoder(state: Mapping[str, torch.Tensor]) -> Encoder:
    """The encoder whose keys and shapes match the most entries of ``state``; large on a tie
    (three of the four released models are), so that a file of neither names what is wrong."""
    def matches(encoder: Encoder) -> int:
        shapes = _shapes(encoder)
        return sum(shapes.get(key) == tuple(value.shape) for key, value in state.items())
    return max(ENCODER_NAMES, key=matches)


@functools.cache
def _shapes(encoder: Encoder) -> dict[str, tuple[int, ...]]:
    """Key -> shape of DDColor's state dict with ``encoder``."""
    # On the meta device nothing is allocated: a check need not build a 900 MB network.
    with torch.device("meta"):
        net = DDColor(encoder)
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time (ns): beside the path, the key of the caches below, so that
    a file written again is read again."""
    try:
        stat = path.stat()
    except OSError as e:
        raise _unreadable(path, e) from e
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=1)
def _state_dict(path: Path, stamp: tuple[int, int]) -> Mapping[str, torch.Tensor]:
    """The file's state dict, read once per process while the file stays as it was (a farm
    worker, or a previewer reloading a script, builds many filters)."""
    return _read_state(path)


def _read_state(path: Path, mmap: bool = False) -> Mapping[str, torch.Tensor]:
    """The file's state dict; with ``mmap`` its tensors mapped from the file, not read
    (:func:`~vsexcolor.weights.checkpoints.torch_load`)."""
    try:
        content = torch_load(path, str(path), mmap=mmap)
    except OSError as e:
        raise _unreadable(path, e) from e
    # The authors' training code saves {"params": state_dict}; their loader takes either.
    if isinstance(content, Mapping) and "params" in content:
        content = content["params"]
    return as_state_dict(content, str(path))


@functools.lru_cache(maxsize=8)
def _digest(path: Path, stamp: tuple[int, int]) -> str:
    """SHA-256 of the file in hex, computed once per process while the file stays as it was."""
    try:
        with open(path, "rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as e:
        raise _unreadable(path, e) from e


def _unreadable(path: Path, error: OSError) -> Invalid:
    return Invalid(f"cannot read {path} ({error.strerror or error})")
