"""Thumbnails of a folder's pictures, made once and kept in ``review-cache/thumbs/``.

A thumbnail is named by its picture's name, modification time and size, so a changed
picture gets a new one; its name also says whether the picture holds colour (``c``) or is
gray (``g``, a frame still to colour), so the grid knows without reading 1,500 pictures.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from ..filter import shots
from ..filter.ref_inputs import has_colour
from ..render.workfolder import write_durably

THUMBS = "thumbs"


class Thumbnails:
    """The thumbnails under ``cache`` (the folder's review cache)."""

    def __init__(self, cache: Path):
        self.folder = cache / THUMBS
        self.lock = threading.Lock()
        self.known: dict[str, str] = {}  # key -> file name
        if self.folder.is_dir():
            for entry in os.scandir(self.folder):
                self.known[entry.name.rsplit(".", 2)[0]] = entry.name

    @staticmethod
    def _key(picture: Path) -> str:
        stat = picture.stat()
        return f"{picture.name}.{stat.st_mtime_ns}.{stat.st_size}"

    def get(self, picture: Path) -> tuple[Path, bool]:
        """The thumbnail (JPEG, :data:`~vsexcolor.filter.shots.THUMB_WIDTH` wide) of
        ``picture``, made if missing, and whether the picture holds colour."""
        key = self._key(picture)
        if (name := self.known.get(key)) is None:
            image = cv2.imread(str(picture), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"{picture.name} cannot be decoded (damaged or cut short): replace it")
            if image.ndim == 3 and image.shape[2] == 4:
                image = image[..., :3]
            thumb = shots.thumbnail(image)
            name = f"{key}.{'c' if _in_colour(thumb) else 'g'}.jpg"
            with self.lock:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_durably(self.folder / name, cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
                self.known[key] = name
        return self.folder / name, name.endswith(".c.jpg")

    def in_colour(self, picture: Path) -> bool:
        return self.get(picture)[1]


def _in_colour(bgr: np.ndarray) -> bool:
    """As colorize tells a coloured reference from a frame not coloured yet."""
    rgb = bgr[..., ::-1].astype(np.float32) / 255.0
    return has_colour(rgb)
