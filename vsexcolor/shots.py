"""A film's shots as ``colorize`` sees them, and the frame of each to colour by hand.

The shots are the segments of :func:`vsexcolor.colorize` itself: its planning clip
(:func:`~vsexcolor.filter.recording`) runs the filter's own cut detector, at its own
threshold, so ``vsexcolor shots`` and a render find the same cuts at the same frames.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np
import torch
import vapoursynth as vs
from vsutil import get_y

from .filter import PROP_SCENE_START, colorize, recording
from .formats import colour_props
from .luma import Luma
from .ref_inputs import Keyed
from .reference import image_lab
from .scenes import cut_score, detection_geometry

core = vs.core

Pick = str  # "first" | "middle" | "sharpest"
PICKS = ("first", "middle", "sharpest")


@dataclass(frozen=True)
class Shot:
    """Frames ``first``..``last`` (inclusive) of one shot; ``pick``: the frame to colour."""

    number: int
    first: int
    last: int
    pick: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def find(clip: vs.VideoNode, scene_threshold: float, tick: Callable[[], None] = lambda: None
         ) -> list[tuple[int, int]]:
    """The shots (first, last) of ``clip``, read front to back; ``tick()`` after each frame."""
    neutral = np.full((8, 8, 3), 0.5, np.float32)  # an exemplar changes no cut
    with recording(planning=True):
        planned = colorize(clip, neutral, backend="propagate", scene_threshold=scene_threshold)
    firsts = []
    for n, frame in enumerate(planned.frames(prefetch=8, close=True)):
        if frame.props[PROP_SCENE_START] == n:
            firsts.append(n)
        tick()
    return list(zip(firsts, [f - 1 for f in firsts[1:]] + [clip.num_frames - 1]))


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


def sharpness(frame: vs.VideoFrame) -> float:
    """Variance of the Laplacian of a gray frame: low for motion blur and fades."""
    image = np.asarray(frame[0]).astype(np.float32)
    return float(cv2.Laplacian(image, cv2.CV_32F).var())


def pick(gray_clip: vs.VideoNode, first: int, last: int, fps: Fraction, how: Pick) -> int:
    """The frame of shot ``first``..``last`` to colour: its first, its middle, or the
    sharpest of its first second."""
    if how == "first":
        return first
    if how == "middle":
        return (first + last) // 2
    span = range(first, min(last, first + max(1, round(fps)) - 1) + 1)
    return max(span, key=lambda n: (sharpness(gray_clip.get_frame(n)), -n))


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def contact_sheet(gray_clip: vs.VideoNode, shots: Sequence[Shot], start_of: Callable[[int], str],
                  columns: int = 6, width: int = 240) -> np.ndarray:
    """Thumbnails of the picked frames in a grid, each labelled with its shot number, frame
    and time code: uint8 BGR."""
    height = max(1, round(width * gray_clip.height / gray_clip.width))
    band = 22
    rows = -(-len(shots) // columns)
    sheet = np.full((rows * (height + band), columns * width, 3), 255, np.uint8)
    for i, shot in enumerate(shots):
        image = np.asarray(gray_clip.get_frame(shot.pick)[0])
        if image.dtype != np.uint8:
            image = (image >> 8).astype(np.uint8)
        thumb = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        y, x = i // columns * (height + band), i % columns * width
        sheet[y:y + height, x:x + width] = thumb[..., None]
        label = f"#{shot.number} {shot.pick:06d} {start_of(shot.first)}"
        cv2.putText(sheet, label, (x + 4, y + height + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return sheet


def detection_L(luma: Luma, frame: vs.VideoFrame) -> torch.Tensor:
    """A luma-clip frame's L at the cut detector's size."""
    full = luma.L(frame)
    return detection_geometry(full.shape[-1], full.shape[-2]).to_internal(full)


def misnumbered(luma: Luma, refs: Sequence[Keyed], shots: Sequence[tuple[int, int]],
                scene_threshold: float) -> list[tuple[Keyed, int]]:
    """Exemplars that look like neither their frame nor anything of its shot's first frame
    (the cut detector would call the step from them a cut), each with the shot start they
    look most like: likely misnumbered. ``luma``: the clip's."""
    found = []
    firsts: dict[int, torch.Tensor] = {}
    detect = detection_geometry(luma.clip.width, luma.clip.height)

    def first_L(n: int) -> torch.Tensor:
        if n not in firsts:
            firsts[n] = detection_L(luma, luma.clip.get_frame(n))
        return firsts[n]

    for ref in refs:
        if ref.keyframe:
            continue
        ref_L = detect.to_internal(image_lab(ref.rgb)[None, :1])
        own = next(a for a, b in shots if a <= ref.start <= b)
        if min(cut_score(ref_L, detection_L(luma, luma.clip.get_frame(ref.start))),
               cut_score(ref_L, first_L(own))) <= scene_threshold:
            continue
        found.append((ref, min((a for a, _ in shots), key=lambda a: cut_score(ref_L, first_L(a)))))
    return found
