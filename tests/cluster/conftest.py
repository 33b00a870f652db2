"""What the cluster tests share: a temporary folder of their own for everything Ray and its
workers write there."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def temporary_folder() -> Iterator[Path]:
    """$TMPDIR for the session, removed after it: Ray's sessions go there (Ray takes $TMPDIR
    for /tmp), and so does the scratch of the workers these tests kill mid-task, which cannot
    remove their own. Short, since Ray's sockets are in it and a socket's path holds 107
    bytes at most."""
    folder = Path(tempfile.mkdtemp(prefix="vsx-", dir="/tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder
    shutil.rmtree(folder, ignore_errors=True)
