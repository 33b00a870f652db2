"""A shot's short looping preview: its first frames coloured by the filter itself from the
folder as it is now (so it shows what the render will give), small, as an animated WebP kept
in ``review-cache/previews/`` under the folder's current references."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import vapoursynth as vs
from PIL import Image

from ..filter.formats import colour_props, frame_rgb, to_rgbs
from ..render.workfolder import write_durably
from .film import Film
from .folder import ReviewError, Shot

PREVIEWS = "previews"
#: Frames a preview shows at most, and its width in pixels.
FRAMES, WIDTH = 24, 320


def references_key(pictures: dict[int, Path]) -> str:
    """What a preview depends on in the folder: every reference (a shot without one of its
    own takes another's), by name, time and size."""
    stats = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in pictures.values())
    return hashlib.sha1(repr(stats).encode()).hexdigest()[:16]


def preview(film: Film, shot: Shot, key: str, cache: Path, frames: int = FRAMES, width: int = WIDTH) -> Path:
    """The preview of ``shot`` (its first ``frames`` frames, ``width`` pixels wide), made
    if the folder's references (``key``) have changed since it was last made."""
    path = cache / PREVIEWS / f"{shot.first:06d}-{key}-{frames}-{width}.webp"
    if path.is_file():
        return path
    with film.lock:
        try:
            clip = film.coloured_as(key)
        except vs.Error as e:
            raise ReviewError(f"no preview: {str(e).removeprefix('colorize: ')}") from None
        rgb = to_rgbs(clip, colour_props(clip, clip.get_frame(0).props))
        last = min(shot.last, shot.first + frames - 1)
        height = max(2, round(width * clip.height / clip.width / 2) * 2)
        pictures = [_small(frame_rgb(rgb.get_frame(n)), (width, height)) for n in range(shot.first, last + 1)]
    out = io.BytesIO()
    pictures[0].save(out, format="WEBP", save_all=True, append_images=pictures[1:], loop=0, quality=80,
                     duration=round(1000 / film.fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, out.getvalue())
    return path


def _small(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return Image.fromarray(np.rint(small * 255).astype(np.uint8))
