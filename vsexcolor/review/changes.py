"""The changes a restorer makes to a shot on the review page: a hand-coloured picture as a
keyframe (or, where its lightness is not its frame's, as an exemplar), another frame
re-picked, the automatic keyframes back, approval. Each is checked whole before anything is
written, and made under the folder's lock on the version of the shot the page showed."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..filter.ref_inputs import GRAY_FOLDER, KEYFRAME_DB, has_colour, lightness_match
from ..filter.reference import ReferenceError, image_size, image_lab, read_image
from ..filter.image_header import declared_size
from ..render.workfolder import create_temporary, write_durably
from .film import Film
from .folder import AUTOMATIC, CACHE, REPICKED, REPLACED, ReviewError, ReviewFolder, Shot

#: The largest upload taken, in bytes: a 16-bit 4K TIFF is about 50 MB.
MAX_UPLOAD = 200 * 2**20
_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}


class NotItsFrame(ReviewError):
    """An upload whose lightness is not its frame's: it could be an exemplar instead."""


def upload(folder: ReviewFolder, film: Film, number: int, version: str, frame: int, data: bytes,
           exemplar: bool = False) -> Shot:
    """Make the picture ``data`` the reference of ``frame`` of shot ``number``: a keyframe,
    which must be that frame in colour (:func:`lightness_match` of at least
    :data:`KEYFRAME_DB`), or with ``exemplar`` a picture whose colours the shot takes."""
    if len(data) > MAX_UPLOAD:
        raise ReviewError(f"the picture is {len(data) / 2**20:.0f} MB, more than the {MAX_UPLOAD // 2**20} MB "
                          f"taken: save it as PNG or JPEG")
    incoming = _received(folder, data)
    try:
        rgb, suffix = _read_upload(incoming, film, frame)
        with folder.lock:
            shot = folder.checked(number, version)
            if frame not in shot.refs and frame not in shot.exported:
                raise ReviewError(f"frame {frame} is no keyframe of shot {number}: re-pick it first")
            if not exemplar:
                with film.lock:
                    db = lightness_match(film.luma, frame, rgb, image_lab(rgb))
                if db < KEYFRAME_DB:
                    raise NotItsFrame(f"the picture's lightness does not match frame {frame} ({db:.1f} dB, a "
                                      f"keyframe needs {KEYFRAME_DB:g}): is it another frame? It can serve the "
                                      f"shot as an exemplar instead")
            _keep_gray(folder, film, shot, frame)
            folder.put(shot, frame, incoming, suffix)
            folder.record(number, REPLACED)
            return folder.shot(number)
    finally:
        incoming.unlink(missing_ok=True)


def _received(folder: ReviewFolder, data: bytes) -> Path:
    """The upload in a file of the folder's file system, so that it is moved into place."""
    incoming = folder.folder / CACHE
    incoming.mkdir(exist_ok=True)
    path, fd = create_temporary(incoming, ".upload-", ".tmp")
    with open(fd, "wb") as f:
        f.write(data)
    return path


def _read_upload(path: Path, film: Film, frame: int) -> tuple[np.ndarray, str]:
    """The uploaded picture (float32 sRGB) and the suffix its format is named with; an error
    where it is no picture, not of the frame's size, or not in colour."""
    header = declared_size(path)
    if header is None:
        raise ReviewError("the file is not a picture vsexcolor reads (PNG, JPEG, TIFF, WebP or BMP): save it as one")
    try:
        size = image_size(path)
        if size != (film.clip.width, film.clip.height):
            raise ReviewError(f"the picture is {size[0]}x{size[1]} and the frame {film.clip.width}x"
                              f"{film.clip.height}: colour the exported frame at its own size")
        rgb = read_image(path)
    except ReferenceError as e:
        raise ReviewError(str(e).replace(f"reference image {str(path)!r}", "the picture")) from None
    if not 0 <= frame < film.clip.num_frames:
        raise ReviewError(f"frame {frame} is not in the film (0 to {film.clip.num_frames - 1})")
    if not has_colour(rgb):
        raise ReviewError("the picture has no colour: colour it first")
    return rgb, _SUFFIXES[header.format]


def repick(folder: ReviewFolder, film: Film, number: int, version: str, old: int, new: int) -> Shot:
    """Make frame ``new`` the shot's keyframe in place of ``old``: coloured by the keyframe
    model where there is one, else gray (it then needs colour; the gray frame is in
    ``gray/`` to download)."""
    with folder.lock:
        shot = folder.checked(number, version)
        if old not in shot.refs:
            raise ReviewError(f"frame {old} is no keyframe of shot {number}")
        if not shot.first <= new <= shot.last:
            raise ReviewError(f"frame {new} is not in shot {number} (frames {shot.first} to {shot.last})")
        if new != old and new in shot.refs:
            raise ReviewError(f"frame {new} is a keyframe of shot {number} already")
        gray = film.gray(new)
        _write_gray(folder, new, gray)
        _keep_gray(folder, film, shot, old)
        picture = film.in_colour(new)
        folder.put(shot, new, _png(gray if picture is None else picture), ".png")
        if new != old:
            folder.remove(shot.refs[old])
        folder.record(number, REPICKED)
        return folder.shot(number)


def revert(folder: ReviewFolder, number: int, version: str) -> Shot:
    """The shot's keyframes back as exported, the pictures it has now kept in history."""
    with folder.lock:
        shot = folder.checked(number, version)
        for frame, path in shot.refs.items():
            if frame not in shot.exported:
                folder.remove(path)
        for frame in shot.exported:
            if kept := folder.history(frame):
                original, current = kept[0], shot.refs.get(frame)
                if current is None or current.read_bytes() != original.read_bytes():
                    folder.put(folder.shot(number), frame, original.read_bytes(), original.suffix)
        folder.record(number, AUTOMATIC)
        return folder.shot(number)


def approve(folder: ReviewFolder, number: int, version: str, approved: bool = True) -> Shot:
    with folder.lock:
        folder.checked(number, version)
        folder.record(number, approved=approved)
        return folder.shot(number)


def _keep_gray(folder: ReviewFolder, film: Film, shot: Shot, frame: int) -> None:
    """Before a picture of ``frame`` changes: its gray frame in ``gray/`` (an export
    without --colorize has it nowhere else), for the page and for colouring by hand."""
    if folder.gray_of(frame) is None:
        _write_gray(folder, frame, film.gray(frame))


def _write_gray(folder: ReviewFolder, frame: int, gray: np.ndarray) -> None:
    (folder.folder / GRAY_FOLDER).mkdir(exist_ok=True)
    write_durably(folder.folder / GRAY_FOLDER / f"{frame:06d}.png", _png(gray))


def _png(image: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", image)
    assert ok
    return png.tobytes()
