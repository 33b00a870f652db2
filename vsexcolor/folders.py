"""Per-user folders (the model folder, the index cache), by each platform's convention."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def user_folder(override: str | None, xdg: str, fallback: str, *leaf: str) -> Path:
    """``$override`` if named and set, else the per-user folder of its kind joined with ``leaf``.

    The folder of its kind is ``%LOCALAPPDATA%`` on Windows, elsewhere ``$xdg``
    (``XDG_DATA_HOME``, ``XDG_CACHE_HOME``...) or ``~/fallback`` (``.local/share``,
    ``.cache``...). The folder need not exist.
    """
    if override and (configured := os.environ.get(override)):
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    else:
        configured = os.environ.get(xdg)
        # The XDG base directory spec says to ignore relative values.
        base = configured if configured and os.path.isabs(configured) else Path.home() / fallback
    return Path(base, *leaf)
