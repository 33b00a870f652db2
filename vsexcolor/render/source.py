"""A video file as a frame-exact VapourSynth clip: BestSource, with its index made once.

BestSource decodes a file once, front to back, to index it (each frame's timestamp,
keyframe flag and a hash of its pixels) and keeps the index in a file. From then on it
opens the file at once, and a request for frame n seeks to a keyframe before n and decodes
from there: the hashes of the frames it lands on say where it is, so frame n is always the
n-th frame of a front-to-back decode. Where the hashes cannot tell (a run of identical
frames at the landing point) it tries 100 frames earlier, up to ten times, and then decodes
from the start of the file; the frames are the same either way, only slower.

The index files live in one folder (:func:`index_dir`), each named after what tells one
file from another (:func:`index_file`), so that a changed or replaced file is indexed anew;
an index whose first frame's hash does not match the file's is made again as well. The
commands index a file before anything else and hand the index file's path to every place
the clip is built, farm workers included. A process indexes under a lock on the index's
name, so that processes of one machine that start together index a file once: the others
wait, then read what the first wrote. Where a folder cannot be written, the index goes to
this machine's index folder, else to this user's cache folder.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import logging
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import vapoursynth as vs
from tqdm import tqdm

from ..folders import user_folder

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # everywhere else
    msvcrt = None

core = vs.core

#: Environment variable naming the index folder.
ENV_VAR = "VSEXCOLOR_INDEX_DIR"
#: Frames before a seek's target that BestSource decodes and keeps (its default, stated).
#: A late start reads backwards from its frame in steps of 8 to find its scene's start
#: (``requests.SEEK_STEP``); each such step then finds its frames kept instead of seeking
#: again. A seek costs the frames from the keyframe before target - SEEK_PREROLL.
SEEK_PREROLL = 20
#: Decoder threads. FFmpeg conceals a damaged packet differently with different thread
#: counts (H.264: 1 against 2 or more; MPEG-2 at 48 lines: 2 against 3 or more), and
#: BestSource returns only frames whose hash matches its index: with a count fixed here,
#: every machine decodes the frames the index was made of, whatever its cores.
THREADS = 4
#: BestSource's own frame cache holds at least this many MiB (its default).
_CACHE_MIB = 100
#: Bytes of a file's head, and of its tail, that its index's name depends on.
_SAMPLE_BYTES = 1 << 16
#: Bytes of a file's name (UTF-8, cut between characters) that its index's name begins
#: with; with the hash and BestSource's suffix the name stays far below the 255 bytes
#: file systems allow.
_NAME_BYTES = 64
# Frames with no timestamp come from BestSource as INT64_MIN (FFmpeg's AV_NOPTS_VALUE).
_NO_PTS = -(2**63)
_PROGRESS = re.compile(r"VideoSource track #\d+ index progress (\d+)%")
# BestSource (22) returns the timestamps it was asked for without declaring them in its
# function's signature, and VapourSynth warns about that on every call.
_UNDECLARED = "no return value(s) named timebaseden, timebasenum, timestamps"
# One thread at a time moves the process's stderr (see _stderr_without).
_STDERR = threading.Lock()
# Locking a file where the file system does not support it.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP}


def index_dir() -> Path:
    """``$VSEXCOLOR_INDEX_DIR`` if set, else :func:`users_index_dir`.

    Index files are small (about 9 bytes a frame) and made again when missing.
    """
    return user_folder(ENV_VAR, "XDG_CACHE_HOME", ".cache", "vsexcolor", "index")


def users_index_dir() -> Path:
    """This user's cache folder + ``vsexcolor/index``: ``%LOCALAPPDATA%`` on Windows,
    elsewhere ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    return user_folder(None, "XDG_CACHE_HOME", ".cache", "vsexcolor", "index")


def index_file(path: Path, folder: Path | None = None) -> Path:
    """Where ``path``'s index lives in ``folder`` (default :func:`index_dir`): its name (up to
    64 bytes of it), and a hash of its absolute path, size, modification and change times,
    inode, and its first and last 64 KiB. A file replaced by another of the same size and
    modification time (``cp -p``, ``rsync -a``) has another change time, inode or bytes.
    BestSource appends the track number and ``.bsindex``.

    Raises:
        OSError: the file cannot be read.
    """
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\0"
                         f"{stat.st_ino}\0".encode())
    with path.open("rb") as file:
        key.update(file.read(_SAMPLE_BYTES))
        file.seek(max(0, stat.st_size - _SAMPLE_BYTES))
        key.update(file.read(_SAMPLE_BYTES))
    name = path.name.encode("utf-8", "replace")[:_NAME_BYTES].decode("utf-8", "ignore")
    return (folder or index_dir()) / f"{name}-{key.hexdigest()[:20]}"


@dataclass(frozen=True)
class Indexed:
    """A file's video as BestSource indexed it: the clip, each frame's timestamp (None
    where the decoder gave none) in units of ``time_base`` seconds, and where the index is
    (the place asked for, or one that this machine can write: see :func:`index`)."""

    clip: vs.VideoNode
    pts: tuple[int | None, ...]
    time_base: Fraction
    index: Path


def index(path: Path, where: Path, progress: bool = True) -> Indexed:
    """``path``'s first video track, indexed into ``where`` (see :func:`index_file`) unless
    its index is there already and its first frame's hash matches the file's (else made
    again, once). Where ``where``'s folder cannot be written, the same name in this
    machine's index folder, else in this user's. ``progress``: a bar while it indexes.

    An index made here is removed again where the file then fails.

    Raises:
        vs.Error: BestSource cannot read or index the file, or no folder can be written.
    """
    with _claimed(where) as place:
        made = not _index_files(place)
        try:
            if made:
                _make(path, place, progress)
            out = _with_timestamps(path, place, progress)
            if not made and not _first_frame_matches(out["clip"]):
                _remove(place)
                made = True
                _make(path, place, progress)
                out = _with_timestamps(path, place, progress)
        except BaseException:
            if made:
                _remove(place)
            raise
    pts = tuple(None if t == _NO_PTS else int(t) for t in _listed(out.get("timestamps", ())))
    num, den = out["timebasenum"], out["timebaseden"]
    return Indexed(out["clip"], pts, Fraction(num, den) if num > 0 and den > 0 else Fraction(1, 90000), place)


def open_indexed(path: Path, where: Path, frame_bytes: int) -> vs.VideoNode:
    """``path``'s first video track with the index in ``where`` (made by :func:`index`);
    where this machine cannot read that (a farm node that does not share the folder) or the
    folder lacks it and cannot be written, with the same name in this machine's index
    folder or this user's, made there once if need be. ``frame_bytes``: the size of a
    frame, for BestSource's cache to hold what a seek keeps.

    Raises:
        vs.Error: BestSource cannot read the file, or no folder can be written.
    """
    cache = max(_CACHE_MIB, math.ceil(frame_bytes * (SEEK_PREROLL + 1) / 2**20))
    with _claimed(where) as place:
        return _video_source(path, place, cachesize=cache)


def _make(path: Path, where: Path, progress: bool) -> None:
    """Index ``path`` into ``where`` (the clip BestSource returns is not kept)."""
    with _indexing_bar(progress):
        _video_source(path, where)


def _with_timestamps(path: Path, where: Path, progress: bool) -> dict:
    """BestSource's clip with its timestamps and time base, from the index at ``where``."""
    with _indexing_bar(progress), _without_warning(_UNDECLARED):
        out = _video_source(path, where, exporttimestamps=True)
    if not isinstance(out, dict):
        raise vs.Error("this BestSource returns no timestamps: install vapoursynth-bestsource 22 or later")
    return out


def _listed(values: object) -> list:
    """A VapourSynth array as a list: a function's result holds an array of one as its value."""
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _first_frame_matches(clip: vs.VideoNode) -> bool:
    """BestSource returns a frame only where its hash is the index's: frame 0 fails where
    the index is another file's."""
    try:
        clip.get_frame(0)
    except vs.Error:
        return False
    return True


def _video_source(path: Path, where: Path, **options) -> vs.VideoNode | dict:
    # cachemode 4: read the index from the file at `where` (+ track and extension), and
    # always write it there (mode 3 skips the files of short videos).
    return core.bs.VideoSource(str(path), cachemode=4, cachepath=str(where), seekpreroll=SEEK_PREROLL,
                               threads=THREADS, showprogress=True, **options)


def _index_files(where: Path) -> list[Path]:
    """The index files BestSource wrote for ``where`` (one a track)."""
    return sorted(where.parent.glob(f"{glob.escape(where.name)}.*.bsindex"))


def _remove(where: Path) -> None:
    for file in _index_files(where):
        file.unlink(missing_ok=True)


@contextlib.contextmanager
def _claimed(where: Path) -> Iterator[Path]:
    """Where ``where``'s index is read or made, locked against this machine's other
    processes meanwhile: ``where`` if its folder exists and can be written, else the same
    name in :func:`index_dir`, else in :func:`users_index_dir` (both made if need be); a
    folder that cannot be written but holds the index serves to read it.

    Raises:
        vs.Error: no such folder can be written, and none holds the index.
    """
    places = ([where] if where.parent.is_dir() else []) + [index_dir() / where.name, users_index_dir() / where.name]
    for place in dict.fromkeys(places):
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            lock = place.with_name(place.name + ".lock").open("ab")
        except OSError:
            if _index_files(place):
                yield place
                return
            continue
        with lock:
            _lock(lock)
            yield place
        return
    raise vs.Error(f"no folder to keep its index in can be written: set {ENV_VAR} to one that can")


def _lock(file: BinaryIO) -> None:
    """Wait for an exclusive lock on ``file``, released when it is closed: ``flock`` where
    there is one (Linux, macOS; NFS too), else Windows' ``msvcrt.locking``; where neither
    exists or the file system has no locks, none (each process may then index the file)."""
    try:
        if fcntl is not None:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        elif msvcrt is not None:
            file.seek(0)
            while True:
                try:
                    msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s
                    return
                except OSError as e:
                    if e.errno != errno.EDEADLOCK:
                        raise
    except OSError as e:
        if e.errno not in _NO_LOCKS:
            raise


@contextlib.contextmanager
def _indexing_bar(progress: bool) -> Iterator[None]:
    """A bar fed by BestSource's indexing messages (a percentage, at most one a second); it
    shows only when indexing takes a while, not when the index is read back."""
    with tqdm(total=100, desc="indexing", unit="%", leave=False, delay=1.0, disable=not progress) as bar:
        def on_message(kind: int, message: str) -> None:
            if match := _PROGRESS.fullmatch(message):
                bar.update(int(match[1]) - bar.n)

        handle = core.add_log_handler(on_message)
        try:
            yield
        finally:
            core.remove_log_handler(handle)


@contextlib.contextmanager
def _without_warning(text: str) -> Iterator[None]:
    """Messages containing ``text`` are dropped meanwhile, wherever VapourSynth sends them.

    VapourSynth hands its messages to every log handler of the core: in Python to the
    ``vapoursynth`` logger, under vspipe to vspipe's, which writes them to the process's
    stderr. So both are filtered (see :func:`_stderr_without`).
    """
    logger = logging.getLogger("vapoursynth")

    def keep(record: logging.LogRecord) -> bool:
        return text not in record.getMessage()

    logger.addFilter(keep)
    try:
        with _stderr_without(text):
            yield
    finally:
        logger.removeFilter(keep)


@contextlib.contextmanager
def _stderr_without(text: str) -> Iterator[None]:
    """The process's stderr (file descriptor 2) goes to a temporary file meanwhile, and what
    was written there goes on to stderr after, less the lines containing ``text``. Meant
    for milliseconds (an index read back): other threads' messages wait that long. Where
    the process has no stderr (a Windows GUI), nothing is done."""
    with _STDERR:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with tempfile.TemporaryFile() as held:
                os.dup2(held.fileno(), 2)
                try:
                    yield
                finally:
                    os.dup2(saved, 2)
                    held.seek(0)
                    kept = b"".join(line for line in held if text.encode() not in line)
                    if kept:
                        os.write(2, kept)
        finally:
            os.close(saved)
