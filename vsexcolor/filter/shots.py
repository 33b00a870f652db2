"""A film's shots as ``colorize`` sees them, and the frames of each to colour.

The shots are the segments of :func:`vsexcolor.colorize` itself: its planning clip
(:func:`~vsexcolor.filter.recording`) runs the filter's own cut detector, at its own
threshold, and its own keyframe pick and placement, so ``vsexcolor shots`` and a render find
the same cuts and the same frames to colour: the picked one, and in a long shot more after it
where the picture has moved on (:mod:`~vsexcolor.filter.placement`), which a render then
carries colour both ways between.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import vapoursynth as vs
from vsutil import get_y

from . import PROP_KEYFRAME, PROP_SHOT_START, colorize, recording
from .formats import colour_props
from .keyframes import KeyframeColorizer
from .luma import Luma
from .ref_inputs import Keyed
from .reference import image_lab
from .resolution import DEFAULT_PIXELS
from .scenes import cut_distance, cut_features, detection_geometry

core = vs.core

Pick = str  # "first" | "middle" | "sharpest"
PICKS = ("first", "middle", "sharpest")
#: Width (pixels) of a contact sheet's thumbnails.
THUMB_WIDTH = 240


@dataclass(frozen=True)
class Shot:
    """Frames ``first``..``last`` (inclusive) of one shot; ``keyframes``: its frames to
    colour, sorted, the picked one (:attr:`pick`) first."""

    number: int
    first: int
    last: int
    keyframes: tuple[int, ...]

    @property
    def pick(self) -> int:
        """The frame picked to colour (``colorize``'s automatic keyframe of the shot)."""
        return self.keyframes[0]

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def find(clip: vs.VideoNode, scene_threshold: float, tick: Callable[[], None] = lambda: None,
         pick: Pick = "sharpest", scene_clip: vs.VideoNode | None = None, scenes: bool = True,
         keyframe_gaps: tuple[float, float] | None = None) -> list[Shot]:
    """The shots of ``clip``, read front to back (``tick()`` after each frame), each with its
    frames to colour: for ``"sharpest"`` and ``"first"`` the very frames ``colorize`` colours
    as the shot's automatic keyframes with that ``keyframe_pick`` and ``keyframe_gaps``
    (default None: the picked frame alone); for ``"middle"`` its middle frame alone.
    ``scene_threshold``, ``scene_clip`` and ``scenes`` as ``colorize``'s (without scenes the
    clip is one shot)."""
    middle = pick == "middle"
    with recording(planning=True):
        # The clip as its own keyframe source gives every shot automatic keyframes where
        # colorize places them; planning reads nothing of it and needs no keyframe model.
        planned = colorize(clip, keyframe_clip=clip, backend="propagate", scene_threshold=scene_threshold,
                           scene_clip=scene_clip, scenes=scenes, keyframe_pick="first" if middle else pick,
                           keyframe_gaps=None if middle else keyframe_gaps)
    starts: list[tuple[int, list[int]]] = []  # (first frame, keyframes) of each shot
    for n, frame in enumerate(planned.frames(prefetch=8, close=True)):
        if not starts or frame.props[PROP_SHOT_START] != starts[-1][0]:
            starts.append((n, []))
        keys, key = starts[-1][1], frame.props[PROP_KEYFRAME]
        if key >= 0 and key not in keys:
            keys.append(key)
        tick()
    lasts = [first - 1 for first, _ in starts[1:]] + [clip.num_frames - 1]
    return [Shot(i + 1, first, last, ((first + last) // 2,) if middle else tuple(keys) or (first,))
            for i, ((first, keys), last) in enumerate(zip(starts, lasts))]


def gray(clip: vs.VideoNode) -> vs.VideoNode:
    """``clip``'s luma as full-range GRAY8 (or GRAY16 above 8 bits): the picture to colour."""
    props = colour_props(clip, clip.get_frame(0).props)
    deep = clip.format.bits_per_sample > 8
    fmt = vs.GRAY16 if deep else vs.GRAY8
    if clip.format.color_family == vs.RGB:
        return core.resize.Point(clip, format=fmt, matrix_s="709")
    luma = get_y(clip)
    if clip.format.sample_type == vs.FLOAT:
        return core.resize.Point(luma, format=fmt, dither_type="error_diffusion")
    return core.resize.Point(luma, format=fmt, range_in=props["_Range"], range=vs.RANGE_FULL)


def in_colour(luma: Luma, n: int, colorizer: KeyframeColorizer) -> np.ndarray:
    """Frame ``n`` coloured as ``colorize`` colours an automatic keyframe: float32 sRGB
    [H, W, 3] in [0, 1] with the frame's own L*. ``luma``: the clip's."""
    return colorizer.rgb(luma.L(luma.clip.get_frame(n)))


def png_image(rgb: np.ndarray, bits: int) -> np.ndarray:
    """float sRGB [H, W, 3] in [0, 1] -> BGR for ``cv2.imwrite``: uint8 for ``bits`` 8, else
    uint16 (a deeper clip's keyframe keeps its finer steps)."""
    dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    return np.rint(np.clip(rgb[..., ::-1], 0.0, 1.0) * top).astype(dtype)


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """A picture as written to PNG (gray [H, W] or BGR [H, W, 3], uint8 or uint16) shrunk to
    ``width`` pixels wide: uint8 BGR."""
    if image.dtype != np.uint8:
        image = (image >> 8).astype(np.uint8)
    height = max(1, round(width * image.shape[0] / image.shape[1]))
    thumb = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return thumb if thumb.ndim == 3 else np.repeat(thumb[..., None], 3, -1)


def contact_sheet(shots: Sequence[Shot], thumbs: Sequence[Sequence[Sequence[np.ndarray]]],
                  start_of: Callable[[int], str], columns: int = 6) -> np.ndarray:
    """Each shot's keyframes as thumbnails, grouped by shot: ``thumbs[i][j]``, the images of
    shot i's keyframe j (:func:`thumbnail`, all of one size: gray, then colour), side by side.
    The groups run left to right in rows of up to ``columns`` thumbnails (a group wider than
    that has a row of its own), each keyframe labelled with its frame, the first of a shot
    also with the shot's number and time code (``start_of(first frame)``): uint8 BGR."""
    height, width = thumbs[0][0][0].shape[:2]
    band = 22
    rows: list[list[int]] = [[]]  # the shots of each row
    used = 0
    for i, images in enumerate(thumbs):
        wide = sum(len(key) for key in images)
        if rows[-1] and used + wide > columns:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += wide
    across = max(sum(len(key) for i in row for key in thumbs[i]) for row in rows)
    sheet = np.full((len(rows) * (height + band), across * width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y, x = r * (height + band), 0
        for i in row:
            shot = shots[i]
            for j, (frame, images) in enumerate(zip(shot.keyframes, thumbs[i])):
                sheet[y:y + height, x:x + len(images) * width] = np.concatenate(images, 1)
                label = f"#{shot.number} {frame:06d} {start_of(shot.first)}" if j == 0 else f"{frame:06d}"
                cv2.putText(sheet, label, (x + 4, y + height + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                            cv2.LINE_AA)
                x += len(images) * width
            # A shot's end: a gray rule, so that the next shot's first keyframe reads as another shot's.
            sheet[y:y + height + band, max(0, x - 1)] = 160
    return sheet


def detection_L(luma: Luma, frame: vs.VideoFrame) -> torch.Tensor:
    """A luma-clip frame's L at the cut detector's size."""
    full = luma.L(frame)
    return detection_geometry(full.shape[-1], full.shape[-2]).to_internal(full)


def misnumbered(luma: Luma, refs: Sequence[Keyed], shots: Sequence[Shot],
                scene_threshold: float) -> list[tuple[Keyed, int]]:
    """Exemplars that look like neither their frame nor anything of its shot's first frame
    (the cut detector would call the step from them a cut), each with the shot start they
    look most like: likely misnumbered. ``luma``: the clip's. Each picture is read at the
    detector's size, and of each frame only what the detector compares is kept."""
    found = []
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    detect = detection_geometry(luma.clip.width, luma.clip.height)

    def features(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame n's, each frame read once (a reference often sits on its shot's first)."""
        if n not in seen:
            seen[n] = cut_features(detection_L(luma, luma.clip.get_frame(n)))
        return seen[n]

    for ref in refs:
        if ref.keyframe:
            continue
        ref_features = cut_features(detect.to_internal(image_lab(ref.rgb(DEFAULT_PIXELS))[None, :1]))
        own = next(shot.first for shot in shots if shot.first <= ref.start <= shot.last)
        if min(cut_distance(ref_features, features(ref.start)), cut_distance(ref_features, features(own))) \
                <= scene_threshold:
            continue
        found.append((ref, min((shot.first for shot in shots),
                               key=lambda a: cut_distance(ref_features, features(a)))))
    return found
