"""A video file as a frame-exact VapourSynth clip: BestSource, with its index made once.

BestSource decodes a file once, front to back, to index it (each frame's timestamp,
keyframe flag and a hash of its pixels) and keeps the index in a file. From then on it
opens the file at once, and a request for frame n seeks to a keyframe before n and decodes
from there: the hashes of the frames it lands on say where it is, so frame n is always the
n-th frame of a front-to-back decode. Where the hashes cannot tell (a run of identical
frames at the landing point) it tries 100 frames earlier, up to ten times, and then decodes
from the start of the file; the frames are the same either way, only slower.

The index files live in one folder (:func:`index_dir`), each named after its video's path,
size and modification time, so that a changed file is indexed anew. The commands index a
file before anything else and hand the index file's path to every place the clip is built,
farm workers included.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import vapoursynth as vs
from tqdm import tqdm

from ..folders import user_folder

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
# Frames with no timestamp come from BestSource as INT64_MIN (FFmpeg's AV_NOPTS_VALUE).
_NO_PTS = -(2**63)
_PROGRESS = re.compile(r"VideoSource track #\d+ index progress (\d+)%")
# BestSource returns the timestamps it was asked for without declaring them, and
# VapourSynth warns about that on every call.
_UNDECLARED = "no return value(s) named timebaseden, timebasenum, timestamps"


def index_dir() -> Path:
    """``$VSEXCOLOR_INDEX_DIR`` if set, else the per-user cache folder + ``vsexcolor/index``.

    The cache folder is ``%LOCALAPPDATA%`` on Windows, elsewhere ``$XDG_CACHE_HOME`` or
    ``~/.cache``. Index files are small (about 9 bytes a frame) and made again when missing.
    """
    return user_folder(ENV_VAR, "XDG_CACHE_HOME", ".cache", "vsexcolor", "index")


def index_file(path: Path, folder: Path | None = None) -> Path:
    """Where ``path``'s index lives in ``folder`` (default :func:`index_dir`): its name, and
    a hash of its absolute path, size and modification time. BestSource appends the track
    number and ``.bsindex``."""
    stat = path.stat()
    key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return (folder or index_dir()) / f"{path.name[:64]}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


@dataclass(frozen=True)
class Indexed:
    """A file's video as BestSource indexed it: the clip, and each frame's timestamp (None
    where the decoder gave none) in units of ``time_base`` seconds."""

    clip: vs.VideoNode
    pts: tuple[int | None, ...]
    time_base: Fraction


def index(path: Path, where: Path, progress: bool = True) -> Indexed:
    """``path``'s first video track, indexed into ``where`` (see :func:`index_file`) unless
    its index is there already. ``progress``: a bar while it indexes.

    Raises:
        vs.Error: BestSource cannot read or index the file.
    """
    with _indexing_bar(progress), _without_warning(_UNDECLARED):
        out = _video_source(path, where, exporttimestamps=True)
    if not isinstance(out, dict):
        raise vs.Error("this BestSource returns no timestamps: install vapoursynth-bestsource 22 or later")
    pts = tuple(None if t == _NO_PTS else int(t) for t in out["timestamps"])
    num, den = out["timebasenum"], out["timebaseden"]
    return Indexed(out["clip"], pts, Fraction(num, den) if num > 0 and den > 0 else Fraction(1, 90000))


def open_indexed(path: Path, where: Path, frame_bytes: int) -> vs.VideoNode:
    """``path``'s first video track with the index in ``where`` (made by :func:`index`);
    where this machine cannot read that (a farm node that does not share the folder), with
    its own index folder's, made there once if need be. ``frame_bytes``: the size of a
    frame, for BestSource's cache to hold what a seek keeps.

    Raises:
        vs.Error: BestSource cannot read the file.
    """
    if not os.access(where.parent, os.R_OK):
        where = index_dir() / where.name
    cache = max(_CACHE_MIB, math.ceil(frame_bytes * (SEEK_PREROLL + 1) / 2**20))
    return _video_source(path, where, cachesize=cache)


def _video_source(path: Path, where: Path, **options) -> vs.VideoNode | dict:
    # cachemode 4: read the index from the file at `where` (+ track and extension), and
    # always write it there (mode 3 skips the files of short videos).
    return core.bs.VideoSource(str(path), cachemode=4, cachepath=str(where), seekpreroll=SEEK_PREROLL,
                               threads=THREADS, showprogress=True, **options)


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
    """VapourSynth's Python log records containing ``text`` are dropped meanwhile."""
    logger = logging.getLogger("vapoursynth")

    def keep(record: logging.LogRecord) -> bool:
        return text not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
