"""What the DEVC and the DDColor checkpoints share: the model folder they live in, the error a
user sees, and reading a state dict that must load strictly, naming what does not fit."""
from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from ..folders import user_folder

#: Environment variable naming the model folder.
ENV_VAR = "VSEXCOLOR_MODEL_DIR"
_LISTED = 4  # keys named per kind of mismatch; the rest are counted
#: The most bytes a checkpoint may unpack to: a zip member read whole, or the records of a
#: ``torch.save`` file (itself a zip, whose records torch reads whole at the size they
#: declare). About twice the largest checkpoint read here (DDColor's, 0.9 GB): a small zip
#: can declare, or inflate to, many gigabytes.
MAX_CHECKPOINT_BYTES = 2 * 2**30
#: How a file ``torch.save`` wrote begins: a zip (torch 1.6 on), else the old format's
#: pickled magic number.
TORCH_HEADS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")


class WeightsError(Exception):
    """The weights cannot be found, read or downloaded; the message says what to do."""


class Invalid(Exception):
    """What is wrong with a checkpoint; callers add what the user should do about it."""


def default_model_dir() -> Path:
    """``$VSEXCOLOR_MODEL_DIR`` if set, else the per-user data folder + ``vsexcolor``.

    The data folder is ``%LOCALAPPDATA%`` on Windows, elsewhere ``$XDG_DATA_HOME`` or
    ``~/.local/share``. The folder need not exist.
    """
    return user_folder(ENV_VAR, "XDG_DATA_HOME", ".local/share", "vsexcolor")


def torch_load(source: BinaryIO | Path, where: str, mmap: bool = False) -> object:
    """What ``torch.save`` stored in ``source``, on the CPU; only tensors and plain containers.
    With ``mmap`` (``source`` a path of a zip ``torch.save`` wrote) the tensors are mapped from
    the file, not read: a check of keys and shapes then costs next to nothing.

    Raises:
        Invalid: it is not a PyTorch checkpoint (or holds objects other than those), or its
            records come to more than :data:`MAX_CHECKPOINT_BYTES`.
        OSError: it cannot be read.
    """
    if _declared_bytes(source) > MAX_CHECKPOINT_BYTES:
        raise _too_large(where)
    try:
        return torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError:
        raise
    except Exception as e:  # torch raises many types for bytes that are not a checkpoint
        # Torch's own reason for bytes of another kind is a stray byte or advice to unpickle them.
        reason = ((str(e).strip().splitlines() or [type(e).__name__])[0] if _head(source).startswith(TORCH_HEADS)
                  else "not a file torch.save writes")
        raise Invalid(f"{where} is not a PyTorch checkpoint ({reason})") from e


def read_member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    """The bytes of member ``name`` of a zip, read whole, but no more than
    :data:`MAX_CHECKPOINT_BYTES`, whether declared or inflated.

    Raises:
        Invalid: it is larger (the file is damaged, or was made to exhaust memory).
        zipfile.BadZipFile, zlib.error, EOFError, OSError: it cannot be read.
    """
    if archive.getinfo(name).file_size > MAX_CHECKPOINT_BYTES:
        raise _too_large(where)
    with archive.open(name) as member:
        data = member.read(MAX_CHECKPOINT_BYTES + 1)
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise _too_large(where)
    return data


def read_file(path: Path, where: str) -> bytes:
    """A checkpoint file's bytes, read whole, refused past :data:`MAX_CHECKPOINT_BYTES`.

    Raises:
        Invalid: it is larger.
        OSError: it cannot be read.
    """
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise _too_large(where)
    return path.read_bytes()


def _declared_bytes(source: BinaryIO | Path) -> int:
    """What the records of a ``torch.save`` file (a zip, whose records torch reads whole, at
    the size they declare) declare in all; 0 for a file of the older format, or no zip."""
    try:
        if not zipfile.is_zipfile(source):
            return 0
        with zipfile.ZipFile(source) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return 0  # torch.load says what is wrong with it
    finally:
        if not isinstance(source, Path):
            source.seek(0)


def _too_large(where: str) -> Invalid:
    return Invalid(f"{where} comes to more than {MAX_CHECKPOINT_BYTES // 2**20} MiB unpacked, more than any "
                   f"checkpoint: it is damaged, or not a checkpoint")
def _head(source: BinaryIO | Path) -> bytes:
    """The first bytes of a file or stream (a stream's position kept)."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return f.read(len(TORCH_HEADS[1]))
    at = source.tell()
    source.seek(0)
    head = source.read(len(TORCH_HEADS[1]))
    source.seek(at)
    return head


def as_state_dict(content: object, where: str) -> Mapping[str, torch.Tensor]:
    """``content`` if it is a state dict (a mapping of names to tensors).

    Raises:
        Invalid: it is anything else.
    """
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise Invalid(f"{where} is not a state dict (a mapping of names to tensors)")
    return content


def check_fits(expected: Mapping[str, Sequence[int]], state: Mapping[str, torch.Tensor],
               where: str, target: str) -> None:
    """Raise unless ``state`` has exactly the keys of ``expected`` with those shapes, which is
    what a strict ``load_state_dict`` needs; the message names the keys that do not fit.

    Args:
        expected: key -> shape of the network's own state dict.
        state: the checkpoint's state dict.
        where: the checkpoint, as the message names it.
        target: the network, as the message names it.

    Raises:
        Invalid: naming missing keys, unexpected keys and wrong shapes, a few of each.
    """
    expected = {k: list(v) for k, v in expected.items()}
    given = {k: list(v.shape) for k, v in state.items()}
    problems = []
    if missing := [k for k in expected if k not in given]:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected := [k for k in given if k not in expected]:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if wrong := [f"{k} {given[k]} (expected {expected[k]})"
                 for k in expected if k in given and given[k] != expected[k]]:
        problems.append(f"wrong shapes: {_few(wrong)}")
    if problems:
        raise Invalid(f"{where} does not fit {target}: {'; '.join(problems)}")


def fill(net: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``state`` strictly into ``net`` and put it in eval mode, first naming what does not fit.

    Raises:
        Invalid: as :func:`check_fits`.
    """
    check_fits({k: v.shape for k, v in net.state_dict().items()}, state, where, type(net).__name__)
    # load_state_dict copies: a cached state dict stays as read.
    net.load_state_dict(state, strict=True)
    net.eval()


def _few(items: list[str]) -> str:
    more = f" (and {len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more
