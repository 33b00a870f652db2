"""What a machine renders with, beyond the render's settings: the versions of the libraries
that make or write its frames, and what the files it reads hold.

vsexcolor itself is told by its version and a fingerprint of its code (:func:`code_version`):
two checkouts between releases share a version number, not their code.

Every machine of a farm must render with the same: the driver compares each worker's
:func:`environment` with its own, and the work folder's manifest records it, so that a
``--resume`` with a library upgraded meanwhile, or a file changed, is refused, naming it.

Files are told apart by their size and the SHA-256 of their bytes where they are at most
``WHOLE`` bytes (references, scripts, most weights), else of their first and last MiB (a
film: hashing it all would cost a minute on every machine); their time of change is left
out, since copies made on each machine differ in it and not in bytes.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from fractions import Fraction
from functools import cache
from pathlib import Path

from ..filter.ref_inputs import files_in

#: Files up to this size are hashed whole.
WHOLE = 64 << 20
_MIB = 1 << 20


def environment(codec: str, files: Iterable[Path]) -> dict[str, str]:
    """The versions of vsexcolor, VapourSynth, PyTorch, OpenCV, PyAV and its libav libraries
    and the encoder of ``codec``, and what each of ``files`` holds (folders: each file in
    them that counts, :func:`~vsexcolor.filter.ref_inputs.files_in`), by name ("torch",
    "file /films/reel1.mkv")."""
    found = {"vsexcolor": code_version(), **dict(_versions())}
    found["encoder"] = encoder_version(codec)
    for path in files:
        for file in files_in(path):
            found[f"file {file}"] = file_fingerprint(file)
    return found


def differences(mine: dict[str, str], theirs: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """(item, ours, theirs) for every item the two environments do not agree on."""
    return [(key, mine.get(key), theirs.get(key)) for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key) != theirs.get(key)]


def code_version() -> str:
    """vsexcolor as this process runs it: its version and its code's fingerprint, as
    "0.1.0, code sha256 <16 hex digits>" (see :func:`code_fingerprint`)."""
    from .. import __version__

    return f"{__version__}, code {code_fingerprint(Path(__file__).resolve().parents[1])}"


@cache
def code_fingerprint(package: Path) -> str:
    """The SHA-256 of the ``.py`` files in the folder ``package`` and below, their paths in it
    and their bytes (compiled files and anything else left out), as "sha256 <16 hex digits>";
    read once per process (about a hundred small files)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        name, code = path.relative_to(package).as_posix().encode(), path.read_bytes()
        digest.update(b"%d %s %d\0" % (len(name), name, len(code)) + code)
    return f"sha256 {digest.hexdigest()[:16]}"


@cache
def _versions() -> tuple[tuple[str, str], ...]:
    import av
    import cv2
    import torch
    import vapoursynth as vs

    libav = [(f"FFmpeg {name}", ".".join(map(str, av.library_versions[name])))
             for name in ("libavcodec", "libavformat", "libavutil") if name in av.library_versions]
    return (("VapourSynth", str(vs.core.core_version)), ("torch", torch.__version__),
            ("OpenCV", cv2.__version__), ("PyAV", av.__version__), *libav)


@cache
def encoder_version(codec: str) -> str:
    """The encoder of ``codec`` (a key of :data:`~vsexcolor.render.encode.CODECS`) with its version:
    x264 and x265 name theirs in what they write; FFV1 is FFmpeg's own (libavcodec's)."""
    import av
    import numpy as np

    from .encode import CODECS

    encoder = CODECS[codec].encoder
    if encoder not in ("libx264", "libx265"):
        return f"{encoder} of libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}"
    context = av.CodecContext.create(encoder, "w")
    context.width, context.height, context.pix_fmt, context.time_base = 64, 64, "yuv420p", Fraction(1, 25)
    if encoder == "libx265":
        context.options = {"x265-params": "log-level=none"}
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    written = b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])
    found = re.search(rb"x264 - core \d+(?: r\d+ \w+)?|x265 \(build \d+\) - [\w.+-]+", written)
    return found[0].decode() if found else f"{encoder} (version not found in its output)"


def file_fingerprint(path: Path) -> str:
    """What ``path`` holds, as this module's docstring says (kept per file, size and time of
    change, for this process)."""
    stat = path.stat()
    return _fingerprint(str(path), stat.st_size, stat.st_mtime_ns)


@cache
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        if size <= WHOLE:
            return f"{size} bytes, sha256 {hashlib.file_digest(f, 'sha256').hexdigest()}"
        digest = hashlib.sha256(f.read(_MIB))
        f.seek(size - _MIB)
        digest.update(f.read(_MIB))
    return f"{size} bytes, sha256 of the first and last MiB {digest.hexdigest()}"


def held_open() -> set[tuple[int, Path]]:
    """The regular files this process holds open (Linux; elsewhere none), with their file
    descriptors: what a script's sources keep open once its clip is built, told from the
    files held before by the descriptors that are new."""
    held = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return held
    for fd in fds:
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
        if target.is_absolute() and target.is_file():
            held.add((int(fd), target))
    return held
