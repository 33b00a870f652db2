"""A folder ``vsexcolor shots`` wrote, as the review page reads and changes it.

The folder itself is the truth: a shot's references are the pictures named by a frame of
the shot at its top (what ``colorize --refs DIR`` reads, by :func:`files_in`'s rule), and
``shots.json`` adds, per shot, ``"state"`` (how its references came: absent or
``"automatic"``, ``"replaced"`` by hand, ``"re-picked"``) and ``"approved"``. Every change
is written durably before it is answered; a picture it replaces is first linked into
``history/`` under the time, so nothing is lost; and a change carries the version of the
shot the page showed, so one made on a stale view (another tab changed the shot) is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..filter.ref_inputs import FRAME_NAME, GRAY_FOLDER, files_in
from ..filter.reference import IMAGE_SUFFIXES
from ..render.workfolder import fsync, write_durably

SHOTS_JSON = "shots.json"
# These two and the gray frames' folder (ref_inputs.GRAY_FOLDER) are among the files a
# references folder leaves out (ref_inputs.SHOTS_FILES).
#: Where a replaced picture goes, named ``NNNNNN.<UTC time>.<suffix>``.
HISTORY = "history"
#: The page's thumbnails and previews, made once.
CACHE = "review-cache"
AUTOMATIC, REPLACED, REPICKED = "automatic", "replaced", "re-picked"
_HISTORY_NAME = re.compile(r"(\d+)\.(\d{8}T\d{6}\.\d{6}Z)\.\w+")


class ReviewError(ValueError):
    """A request the folder refuses; the message says what to do. Nothing was written."""


class StaleView(ReviewError):
    """A change made on a view of a shot that another change has since altered."""


@dataclass(frozen=True)
class Shot:
    """One shot of the folder: frames ``first``..``last``; ``exported``: its keyframes as
    ``vsexcolor shots`` exported them; ``refs``: {frame: picture} of its references now;
    ``version``: changes whenever the shot does (its state or any of its pictures)."""

    number: int
    first: int
    last: int
    start: str
    duration_s: float
    exported: tuple[int, ...]
    refs: dict[int, Path]
    state: str
    approved: bool
    version: str


class ReviewFolder:
    """The shots of ``folder`` and the changes the page makes to them, one at a time."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.meta = json.loads((folder / SHOTS_JSON).read_bytes())
            self.rows = {int(row["shot"]): row for row in self.meta["shots"]}
        except (OSError, ValueError, KeyError, TypeError):
            raise ReviewError(f"{folder} holds no shots.json of `vsexcolor shots`: export the film's shots into it "
                              f"first (vsexcolor shots FILM -o {folder})") from None
        self.lock = threading.Lock()
        self._pictures: tuple[int, dict[int, Path]] | None = None  # (the folder's mtime, pictures)

    # Reading.

    def pictures(self) -> dict[int, Path]:
        """Every top-level picture named by a frame number that colorize --refs reads.

        Kept while the folder's own modification time stays (a picture added, removed or
        renamed into place changes it; one rewritten in place changes no name): a page's
        thumbnails each ask for a picture, and the folder holds 1,500 and more."""
        stamp = self.folder.stat().st_mtime_ns
        if self._pictures is None or self._pictures[0] != stamp:
            found = {}
            for path in files_in(self.folder):
                match = FRAME_NAME.fullmatch(path.stem)
                if path.parent == self.folder and match and path.suffix.lower() in IMAGE_SUFFIXES:
                    found[int(match[1])] = path
            self._pictures = (stamp, found)
        return dict(self._pictures[1])

    def shots(self) -> list[Shot]:
        pictures = self.pictures()
        return [self._shot(row, pictures) for row in self.rows.values()]

    def shot(self, number: int) -> Shot:
        if number not in self.rows:
            raise ReviewError(f"there is no shot {number}: the folder has shots 1 to {len(self.rows)}")
        return self._shot(self.rows[number], self.pictures())

    def _shot(self, row: dict, pictures: dict[int, Path]) -> Shot:
        first, last = int(row["first"]), int(row["last"])
        refs = {n: p for n, p in pictures.items() if first <= n <= last}
        state, approved = row.get("state", AUTOMATIC), bool(row.get("approved", False))
        stats = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in refs.values()]
        version = hashlib.sha1(json.dumps([state, approved, stats]).encode()).hexdigest()[:16]
        return Shot(int(row["shot"]), first, last, row.get("start", ""), float(row.get("duration_s", 0.0)),
                    tuple(row.get("keyframes", [row["frame"]])), refs, state, approved, version)

    def gray_of(self, frame: int) -> Path | None:
        """The gray frame written beside a coloured one, if any."""
        path = self.folder / GRAY_FOLDER / f"{frame:06d}.png"
        return path if path.is_file() else None

    def history(self, frame: int) -> list[Path]:
        """The pictures of ``frame`` replaced so far, oldest first."""
        folder = self.folder / HISTORY
        if not folder.is_dir():
            return []
        kept = [(m[2], p) for p in folder.iterdir() if (m := _HISTORY_NAME.fullmatch(p.name)) and int(m[1]) == frame]
        return [p for _, p in sorted(kept)]

    def unapproved(self) -> int:
        return sum(not row.get("approved", False) for row in self.rows.values())

    # Changing: each under the lock, after the version check.

    def checked(self, number: int, version: str) -> Shot:
        """The shot, if ``version`` is still its version; else :class:`StaleView`."""
        shot = self.shot(number)
        if version != shot.version:
            raise StaleView(f"shot {number} was changed in another tab or window since this page showed it: "
                            f"reload the page and make the change again")
        return shot

    def put(self, shot: Shot, frame: int, data: bytes | Path, suffix: str) -> None:
        """Make ``data`` (bytes, or a file to move) the picture of ``frame`` (in ``shot``),
        the one it replaces kept in history first."""
        if not shot.first <= frame <= shot.last:
            raise ReviewError(f"frame {frame} is not in shot {shot.number} (frames {shot.first} to {shot.last})")
        target = self.folder / f"{frame:06d}{suffix}"
        self._pictures = None  # a change within the folder's clock tick changes no time
        if (old := shot.refs.get(frame)) is not None:
            self.keep(old)
            if old != target:
                old.unlink()
        write_durably(target, data)

    def remove(self, path: Path) -> None:
        """Take a picture out of the folder, into history."""
        self.keep(path)
        self._pictures = None
        path.unlink()
        fsync(self.folder)

    def keep(self, path: Path) -> Path:
        """Link ``path`` into history (durably) under the time; the picture itself stays."""
        history = self.folder / HISTORY
        history.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        match = FRAME_NAME.fullmatch(path.stem)
        kept = history / f"{int(match[1]):06d}.{stamp}{path.suffix.lower()}"
        try:
            os.link(path, kept)
        except OSError:  # a file system without hard links: a copy, written durably
            write_durably(kept, path.read_bytes())
        fsync(history)
        return kept

    def record(self, number: int, state: str | None = None, approved: bool = False) -> None:
        """Write the shot's state to shots.json (atomically, durably); a change of its
        pictures (``state`` given) takes back its approval."""
        row = self.rows[number]
        if state is not None:
            if state == AUTOMATIC:
                row.pop("state", None)
            else:
                row["state"] = state
        if approved:
            row["approved"] = True
        else:
            row.pop("approved", None)
        write_durably(self.folder / SHOTS_JSON, json.dumps(self.meta, indent=2).encode())

