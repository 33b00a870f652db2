"""Finding, checking, loading and downloading the DEVC weights (the authors' checkpoint).

The authors publish ``colorization_checkpoint.zip`` (release v1.0), which holds
``data/vgg19_conv.pth`` and ``checkpoints/video_moredata_l1/{nonlocal_net,colornet}_iter_76000.pth``,
each a plain ``torch.save(state_dict)``, possibly under one top-level folder and beside files we
do not use. The weights are read either straight from that zip (members are read into memory,
nothing is unpacked) or from a folder holding the unpacked ``data/`` and ``checkpoints/``.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import (ENV_VAR, Invalid, WeightsError, as_state_dict, default_model_dir, fill, read_file,
                          read_member, torch_load)
from .download import download_checked
from ..models import ColorVidNet, VGG19Features, WarpNet

OFFICIAL_URL = ("https://github.com/zhangmozhe/Deep-Exemplar-based-Video-Colorization/"
                "releases/download/v1.0/colorization_checkpoint.zip")
#: File name of the checkpoint zip in a model folder, whatever URL it came from.
ZIP_NAME = "colorization_checkpoint.zip"
VGG_FILE = "data/vgg19_conv.pth"

# Zip members may sit under one top-level folder (the "root"); folders are read from their top.
_VGG = re.compile(r"(?P<root>(?:[^/]+/)?)data/vgg19_conv\.pth")
_NONLOCAL = re.compile(r"(?P<root>(?:[^/]+/)?)checkpoints/(?P<run>[^/]+)/nonlocal_net_iter_(?P<n>\d+)\.pth")

_FIND_HINT = (f"Run `vsexcolor download`, set {ENV_VAR} to the folder holding the weights, "
              f"or pass their path ({ZIP_NAME} or the folder it was unpacked to).")
_LOAD_HINT = ("Run `vsexcolor download` to fetch the official checkpoint (it replaces a damaged one), "
              "or pass the path of a valid checkpoint.")


@dataclass(frozen=True)
class _Checkpoint:
    source: Path  # a zip or a folder
    files: tuple[str, str, str]  # VGG, WarpNet, ColorVidNet: POSIX paths inside ``source``


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`describe` found out about the weights at one location."""

    looked_in: Path  #: the location searched
    origin: str  #: why there: ``"given"``, ``"from $VSEXCOLOR_MODEL_DIR"`` or ``"default"``
    found: Path | None  #: the zip or folder picked, None when there is none
    files: tuple[str, ...]  #: the three checkpoint files inside ``found`` (empty if unidentified)
    error: str | None  #: why the weights cannot be used; None when they load

    @property
    def valid(self) -> bool:
        return self.error is None


def find_weights(location: str | os.PathLike[str] | None = None) -> Path:
    """Where the weights are: a checkpoint zip or an unpacked folder.

    Args:
        location: a zip; a folder with ``data/`` and ``checkpoints/``; or a folder holding
            ``colorization_checkpoint.zip`` (the unpacked layout wins when a folder has both).
            None means :func:`default_model_dir`.

    Raises:
        WeightsError: nothing there; the message names the place and what to do.
    """
    where = default_model_dir() if location is None else Path(location).expanduser()
    if where.is_file():
        return where
    if (where / "data").is_dir() and (where / "checkpoints").is_dir():
        return where
    if (where / ZIP_NAME).is_file():
        return where / ZIP_NAME
    if not where.exists():
        raise WeightsError(f"no DEVC weights at {where}: it does not exist. {_FIND_HINT}")
    raise WeightsError(f"no DEVC weights in {where}: it holds neither {ZIP_NAME} nor unpacked "
                       f"data/ and checkpoints/ folders. {_FIND_HINT}")


def load_nets(location: str | os.PathLike[str] | None = None) -> tuple[VGG19Features, WarpNet, ColorVidNet]:
    """The three networks on the CPU in eval mode, filled strictly from the checkpoint.

    ``location`` is as for :func:`find_weights`. Of the ``checkpoints/<run>/`` files, the pair
    ``nonlocal_net_iter_N.pth`` + ``colornet_iter_N.pth`` with the highest N is used.

    Raises:
        WeightsError: the weights are missing, damaged or do not fit the networks.
    """
    try:
        return _load(_checkpoint(find_weights(location)))
    except Invalid as e:
        raise WeightsError(f"{e}. {_LOAD_HINT}") from e


def describe(location: str | os.PathLike[str] | None = None) -> WeightsReport:
    """Search and fully load the weights like :func:`load_nets`, reporting instead of raising."""
    if location is not None:
        looked_in, origin = Path(location).expanduser(), "given"
    else:
        looked_in = default_model_dir()
        origin = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else "default"
    found, files, error = None, (), None
    try:
        found = find_weights(looked_in)
        checkpoint = _checkpoint(found)
        files = checkpoint.files
        _load(checkpoint)
    except WeightsError as e:
        error = str(e)
    except Invalid as e:
        error = f"{e}. {_LOAD_HINT}"
    return WeightsReport(looked_in, origin, found, files, error)


def download(url: str = OFFICIAL_URL, dest_dir: str | os.PathLike[str] | None = None,
             progress: bool = True) -> Path:
    """Download the checkpoint zip to ``dest_dir/colorization_checkpoint.zip`` and check it.

    Bytes go to ``colorization_checkpoint.zip.part`` first; an interrupted download resumes from
    it (HTTP Range where the server supports it). Only a part that loads strictly into the
    networks is renamed to the final name, so that name never holds a partial or bad file.
    If valid weights are already there, nothing is downloaded.

    Args:
        url: ``http(s)://`` or ``file://`` address of the zip.
        dest_dir: the model folder, created if missing; None means :func:`default_model_dir`.
        progress: show a progress bar (bytes, with the total when known) and status lines on stderr.

    Returns:
        The path of the checked zip.

    Raises:
        WeightsError: the folder is not writable, the download failed (the part is kept for a
            resume) or its content is not a DEVC checkpoint (the part is deleted).
    """
    dest_dir = default_model_dir() if dest_dir is None else Path(dest_dir).expanduser()
    return download_checked(url, dest_dir / ZIP_NAME, lambda path: _load(_checkpoint(path)),
                            what="a DEVC checkpoint", command="vsexcolor download", progress=progress)


def _checkpoint(source: Path) -> _Checkpoint:
    """Pick the checkpoint files in a zip or folder: the highest N that has both files."""
    names = set(_list(source))
    roots = {m["root"] for name in names if (m := _VGG.fullmatch(name))}
    if not roots:
        raise Invalid(f"{source} has no {VGG_FILE}")
    pairs = [m for name in names
             if (m := _NONLOCAL.fullmatch(name)) and m["root"] in roots and _colornet_file(m) in names]
    if not pairs:
        raise Invalid(f"{source} has no checkpoints/<run>/nonlocal_net_iter_N.pth with a "
                      f"colornet_iter_N.pth of the same N beside it")
    # The run folder and root only break ties, so that the pick does not depend on listing order.
    best = max(pairs, key=lambda m: (int(m["n"]), m["run"], m["root"]))
    return _Checkpoint(source, (best["root"] + VGG_FILE, best.string, _colornet_file(best)))


def _colornet_file(nonlocal_match: re.Match[str]) -> str:
    m = nonlocal_match
    return f"{m['root']}checkpoints/{m['run']}/colornet_iter_{m['n']}.pth"


def _list(source: Path) -> list[str]:
    """The POSIX paths of the files that may be checkpoint files in a zip or folder."""
    if source.is_dir():
        return [path.relative_to(source).as_posix()
                for pattern in (VGG_FILE, "checkpoints/*/*.pth") for path in source.glob(pattern)]
    with _open_zip(source) as archive:
        return archive.namelist()


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise Invalid(f"{path} is not a readable zip file ({e})") from e


def fingerprint(location: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 of the three checkpoint files :func:`load_nets` uses (the same for the zip and
    the folder it was unpacked to); what a render's result depends on. The files are read
    through, not loaded: a render's planning needs this, and no network.

    Raises:
        WeightsError: the weights are missing or unreadable.
    """
    try:
        checkpoint = _checkpoint(find_weights(location))
        return _digest(checkpoint, _stamps(checkpoint))
    except Invalid as e:
        raise WeightsError(f"{e}. {_LOAD_HINT}") from e


@functools.lru_cache(maxsize=4)
def _digest(checkpoint: _Checkpoint, stamps: tuple) -> str:
    source, digest = checkpoint.source, hashlib.sha256()
    with (nullcontext() if source.is_dir() else _open_zip(source)) as archive:
        for name in checkpoint.files:
            try:
                with archive.open(name) if archive is not None else (source / name).open("rb") as member:
                    for chunk in iter(lambda: member.read(1 << 20), b""):
                        digest.update(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise Invalid(f"cannot read {name} in {source}: it is damaged or unreadable ({e})") from e
    return digest.hexdigest()


def _stamps(checkpoint: _Checkpoint) -> tuple:
    """Size and modification time of the checkpoint's files: what tells that they changed."""
    source = checkpoint.source
    return tuple((p.stat().st_size, p.stat().st_mtime_ns)
                 for p in ([source] if source.is_file() else [source / name for name in checkpoint.files]))


def _load(checkpoint: _Checkpoint) -> tuple[VGG19Features, WarpNet, ColorVidNet]:
    nets = (VGG19Features(), WarpNet(), ColorVidNet())
    for net, name, state in zip(nets, checkpoint.files, _read(checkpoint)):
        fill(net, state, f"{name} in {checkpoint.source}")
    return nets


def _read(checkpoint: _Checkpoint) -> tuple[Mapping[str, torch.Tensor], ...]:
    """The checkpoint's three state dicts, read once per process
    while the files stay as they were (a farm worker, or a previewer reloading a script,
    builds many filters on the same weights)."""
    return _read_stamped(checkpoint, _stamps(checkpoint))


@functools.lru_cache(maxsize=1)
def _read_stamped(checkpoint: _Checkpoint, stamps: tuple) -> tuple[Mapping[str, torch.Tensor], ...]:
    source, states = checkpoint.source, []
    with (nullcontext() if source.is_dir() else _open_zip(source)) as archive:
        for name in checkpoint.files:
            where = f"{name} in {source}"
            try:
                data = read_member(archive, name, where) if archive is not None else read_file(source / name, where)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise Invalid(f"cannot read {where}: it is damaged or unreadable ({e})") from e
            states.append(as_state_dict(torch_load(io.BytesIO(data), where), where))
    return tuple(states)

