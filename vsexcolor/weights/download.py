"""Downloading one checkpoint file into the model folder so that its final name never holds a
partial or a wrong file: bytes go to ``NAME.part`` (an interrupted download resumes from it,
with an HTTP Range request where the server supports it), and only a part that passes the
caller's check is renamed to ``NAME``."""
from __future__ import annotations

import http.client
import io
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from .checkpoints import ENV_VAR, Invalid, WeightsError

_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60


def download_checked(url: str, final: Path, check: Callable[[Path], object], *, what: str,
                     command: str, progress: bool = True) -> Path:
    """Download ``url`` to ``final`` unless a file there already passes ``check``.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        final: where the checked file goes; its folder is created if missing.
        check: raises :class:`~vsexcolor.weights.checkpoints.Invalid` for a file that is not usable.
        what: what the file should be, for messages (``"a DEVC checkpoint"``).
        command: the command that runs this download again, for messages (``"vsexcolor download"``).
        progress: show a progress bar (bytes, with the total when known) and status lines on stderr.

    Returns:
        ``final``.

    Raises:
        WeightsError: the folder is not writable, the download failed (the part is kept for a
            resume) or the file does not pass ``check`` (the part is deleted).
    """
    if final.is_file():
        try:
            check(final)
        except Invalid as e:
            _say(progress, f"{final} is not usable ({e}); downloading it again")
        else:
            _say(progress, f"valid weights are already at {final}; nothing to download")
            return final
    _ensure_writable(final.parent, command)
    part = final.with_name(f"{final.name}.part")
    _fetch(url, part, command, progress)
    try:
        check(part)
    except Invalid as e:
        part.unlink()
        raise WeightsError(f"{url} is not {what}: {e}. The download was deleted; check the URL.") from e
    os.replace(part, final)
    _say(progress, f"saved {final}")
    return final


def _say(enabled: bool, message: str) -> None:
    """A status line on stderr, if ``enabled``."""
    if enabled:
        print(f"vsexcolor: {message}", file=sys.stderr)


def _ensure_writable(folder: Path, command: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Creating a file is the only test that holds for root and for odd file systems.
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise WeightsError(f"cannot write to the model folder {folder} ({e.strerror or e}). "
                           f"Set {ENV_VAR} to a folder you can write to, or choose one with "
                           f"`{command} --dir`.") from e


def _fetch(url: str, part: Path, command: str, progress: bool) -> None:
    """Download ``url`` into ``part``, continuing after the bytes it already holds."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        stream, start, total = _open_url(url, offset)
        with (stream, open(part, "ab" if start else "wb") as out,
              tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), file=sys.stderr, disable=not progress) as bar):
            while chunk := stream.read(_CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    # URLError and HTTPError are OSErrors; ValueError is a malformed URL.
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise WeightsError(f"cannot download {url} ({_reason(e)}). Check the address and the "
                           f"connection, then {_again(part, command)}") from e
    if total is not None and size != total:
        raise WeightsError(f"the download of {url} stopped after {size} of {total} bytes; "
                           f"{_again(part, command)}")


def _again(part: Path, command: str) -> str:
    if part.is_file() and part.stat().st_size:
        return f"run `{command}` again: it resumes from {part}."
    return f"run `{command}` again."


def _open_url(url: str, offset: int) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` to continue a download that already has ``offset`` bytes.

    Returns the stream, the byte offset it starts at (``offset``, or 0 when the source cannot
    continue there) and the total size in bytes (None when the server does not say).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        # urllib's file handler cannot start mid-file; a seek can.
        stream = open(urllib.request.url2pathname(parts.path), "rb")
        total = os.fstat(stream.fileno()).st_size
        start = offset if offset <= total else 0
        stream.seek(start)
        return stream, start, total
    headers = {"User-Agent": "vsexcolor"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:
            raise
        # Nothing after offset: "bytes */SIZE" tells a complete part from one longer than the file.
        complete = e.headers.get("Content-Range") == f"bytes */{offset}"
        e.close()
        return (io.BytesIO(), offset, offset) if complete else _open_url(url, 0)
    start = offset if response.status == 206 else 0
    length = response.headers.get("Content-Length")
    return response, start, start + int(length) if length is not None else None


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
