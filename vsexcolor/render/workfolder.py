"""``OUTPUT.parts/``: the work folder of a resumable render.

It holds ``manifest.json`` (everything that shapes the output's bytes) and one finished
file per part, ``frames-FIRST-LAST.mp4``. Every file is written under a temporary name,
flushed to disk with its folder, and only then renamed, so that after a crash or a power
cut a part or a manifest is either whole or absent. Files are created with the permissions
the umask leaves, as any other program's.

On a render farm, the driver leaves a probe file here (:meth:`WorkFolder.share`); a worker
that reads it back sees this very folder, and writes its parts here itself.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import av

_PART = re.compile(r"frames-(\d{8})-(\d{8})\.mp4")
#: The probe file a farm's driver writes; its text is a random token.
PROBE = "shared-probe"
#: Seconds the driver waits for a part a worker wrote to show up here (NFS caches names).
SEEN_WITHIN_S = 30


class WorkError(Exception):
    """The work folder cannot be used as asked; the message says what to do."""


def write_durably(path: Path, data: bytes | Path) -> None:
    """Put ``data`` at ``path`` whole or not at all, and on disk: bytes go to a temporary
    file beside ``path``, a file (on the same file system) is taken as it is; either is
    flushed to disk, renamed over ``path``, and the rename flushed too."""
    if isinstance(data, Path):
        fsync(data)
        os.replace(data, path)
    else:
        name, fd = create_temporary(path.parent, f".{path.name}.", ".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, path)
        except BaseException:
            name.unlink(missing_ok=True)
            raise
    fsync(path.parent)


def create_temporary(folder: Path, prefix: str, suffix: str) -> tuple[Path, int]:
    """A new file of a name no other has (``prefix``, random, ``suffix``) in ``folder``, open
    for writing; created as any program creates a file (0666 less the umask), not private as
    :func:`tempfile.mkstemp` makes it, since it is renamed into place as it is."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue


def part_path(folder: Path, first: int, last: int) -> Path:
    """Where the part of frames ``first``..``last`` is kept in the work folder ``folder``."""
    return folder / f"frames-{first:08d}-{last:08d}.mp4"


def sees_probe(folder: str, token: str) -> bool:
    """Whether this machine sees the work folder ``folder`` whose probe holds ``token`` (see
    :meth:`WorkFolder.share`), and may write there."""
    try:
        return (Path(folder) / PROBE).read_text() == token and os.access(folder, os.W_OK)
    except (OSError, UnicodeDecodeError):
        return False


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def count_frames(path: Path) -> int | None:
    """The video frames of a part, counted from its packets; None if it cannot be read."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for p in container.demux(video=0) if p.size)
    except (av.FFmpegError, OSError, IndexError):
        return None


class WorkFolder:
    """The work folder of the render to ``output``.

    ``settings`` (compared when resuming: any change is refused) and ``settled`` values
    (what the run found out, e.g. the backend the filter picked: recorded when first seen,
    and every later part must agree) make up the manifest, with the first frames of the
    parts that restart a shot at a keyframe inside it (``restarts``, for the summary).
    """

    def __init__(self, output: Path) -> None:
        self.folder = output.with_name(output.name + ".parts")
        self.manifest = self.folder / "manifest.json"
        self.settings: dict = {}
        self.settled: dict = {}
        self._parts: dict[int, tuple[int, Path]] = {}
        self.restarts: set[int] = set()

    def open(self, settings: Mapping, *, resume: bool, overwrite: bool,
             note: Callable[[str], None]) -> None:
        """Start or take up the work (:meth:`parts` then has the parts already finished)."""
        self.settings = json.loads(json.dumps(settings))  # as it reads back from the manifest
        if self.folder.exists():
            if not self.manifest.is_file():
                raise WorkError(f"{self.folder} exists but is no vsexcolor work folder; move it away")
            if resume:
                self._parts = self._resume(note)
                return
            if not overwrite:
                raise WorkError(f"{self.folder} holds an unfinished run; add --resume to continue it, "
                                "or --overwrite to start over")
            shutil.rmtree(self.folder)
        elif resume:
            note("nothing to resume; starting from the beginning")
        self.folder.mkdir()
        self._write()

    def _resume(self, note: Callable[[str], None]) -> dict[int, tuple[int, Path]]:
        try:
            saved = json.loads(self.manifest.read_text())
            before, self.settled = saved["settings"], saved["settled"]
            self.restarts = set(saved.get("restarts", []))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WorkError(f"cannot read {self.manifest} ({e}); add --overwrite to start over") from None
        changed = [f"{name} was {_shown(was)}, now {_shown(now)}"
                   for key in sorted(before.keys() | self.settings.keys()) if before.get(key) != self.settings.get(key)
                   for name, was, now in _changes(key, before.get(key), self.settings.get(key))]
        if changed:
            raise WorkError(f"{self.folder} was started with other settings ({'; '.join(changed)}); run the "
                            "original command with --resume, or add --overwrite to start over")
        parts: dict[int, tuple[int, Path]] = {}
        for path in sorted(self.folder.iterdir()):
            match = _PART.fullmatch(path.name)
            if path == self.manifest:
                continue
            if match is None:  # a temporary file of a killed run
                path.unlink()
                continue
            first, last = int(match[1]), int(match[2])
            if count_frames(path) != last - first + 1:
                note(f"{path.name} is damaged or short; its frames are colorized again")
                path.unlink()
                continue
            parts[first] = (last, path)
        return parts

    def settle(self, key: str, value: object, where: str = "") -> None:
        """Record ``value`` as what ``key`` is for this output, or refuse a different one."""
        value = json.loads(json.dumps(value))
        before = self.settled.get(key)
        if before is None:
            self.settled[key] = value
            self._write()
        elif before != value:
            if isinstance(before, dict) and isinstance(value, dict):  # name the item that differs
                item = min(k for k in before.keys() | value.keys() if before.get(k) != value.get(k))
                key, before, value = f"{key}: {item}", before.get(item), value.get(item)
            raise WorkError(f"{key} {_shown(value)}{where} differs from the {_shown(before)} the rest of "
                            f"{self.folder} was made with; the parts would not match: add --overwrite to start "
                            "over, or render where it is the same")

    def part(self, first: int, last: int) -> Path:
        return part_path(self.folder, first, last)

    def add(self, first: int, last: int, data: bytes | Path, restart: bool = False) -> None:
        """Store a finished part, its bytes or its file (which is moved), durably; ``restart``:
        it starts at a keyframe inside a shot."""
        path = self.part(first, last)
        # Taken up first: a Ctrl-C once the file is in place (while the rename is flushed)
        # leaves a part that counts, and the folder is kept for --resume, as said.
        self._parts[first] = (last, path)
        try:
            write_durably(path, data)
        except BaseException:
            if not path.exists():
                del self._parts[first]
            raise
        if restart:
            self.restarts.add(first)
            self._write()

    def record(self, first: int, last: int, size: int, restart: bool = False, where: str = "") -> None:
        """Take up a part that a worker wrote into this folder itself (see :meth:`share`): it
        must be there, ``size`` bytes; ``where`` names the worker in the error."""
        path = self.part(first, last)
        waited = time.monotonic()
        while True:
            try:
                found = path.stat().st_size
            except FileNotFoundError:
                found = None
            if found == size:
                break
            if time.monotonic() - waited > SEEN_WITHIN_S:
                seen = "is missing" if found is None else f"has {found} bytes, not {size}"
                raise WorkError(f"{path.name}, written{where} into {self.folder}, {seen} here; is the folder "
                                "shared alike by every machine?")
            time.sleep(0.2)
        self._parts[first] = (last, path)
        if restart:
            self.restarts.add(first)
            self._write()

    def incoming(self) -> Incoming:
        """A part arriving in pieces (its bytes sent by a worker), kept in a temporary file."""
        return Incoming(self.folder)

    def share(self) -> tuple[str, str]:
        """Leave a probe file of a random token here, for workers to tell whether they see this
        folder (:func:`sees_probe`); (this folder, the token)."""
        token = secrets.token_hex(16)
        write_durably(self.folder / PROBE, token.encode())
        return str(self.folder), token

    def parts(self) -> dict[int, tuple[int, Path]]:
        """The finished parts, ``{first: (last, path)}``."""
        return dict(self._parts)

    def remove(self) -> None:
        shutil.rmtree(self.folder)

    def _write(self) -> None:
        text = json.dumps({"settings": self.settings, "settled": self.settled, "restarts": sorted(self.restarts)},
                          indent=2, sort_keys=True)
        write_durably(self.manifest, text.encode())


class Incoming:
    """A part's bytes as they arrive, in a temporary file of the work folder, until
    :meth:`WorkFolder.add` takes the file (or :meth:`discard`: the sender was lost)."""

    def __init__(self, folder: Path) -> None:
        self.path, fd = create_temporary(folder, ".incoming-", ".tmp")
        self._file = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self.size += len(data)

    def close(self) -> Path:
        self._file.close()
        return self.path

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _changes(key: str, was: object, now: object) -> list[tuple[str, object, object]]:
    """What changed in a setting: of a dict (e.g. the files a script reads), each item that did."""
    if isinstance(was, dict) and isinstance(now, dict):
        return [(f"{key} {item}", was.get(item), now.get(item)) for item in sorted(was.keys() | now.keys())
                if was.get(item) != now.get(item)]
    return [(key, was, now)]


def _shown(value: object) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else repr(value)
