"""Training samples from colour videos and images: a frame pair, a reference and the optical flow.

Sample number n is a pure function of (seed, n), whoever loads it and in whatever order,
so a resumed or multi-process run sees exactly the samples an uninterrupted one would.

A sample (all float32 tensors; Lab with L 0..100 and raw a, b; H x W the training size):

* ``lab`` [2, 3, H, W]: frames t-1 and t of a clip (the networks see only their L);
* ``reference`` [3, H, W]: the colour reference: a frame of the same clip far from the pair,
  or an external image (both randomly cropped and flipped);
* ``flow`` [2, H, W]: backward flow from frame t to frame t-1 in pixels (x, y), as
  :mod:`vsexcolor.backends.flow` defines it;
* ``valid`` [1, H, W]: 1 where that flow can be trusted (not occluded, not from outside);
* ``same_clip`` []: 1 when the reference comes from the pair's own clip (its colours are then
  the right answer), 0 for an external reference.

Real pairs get their flow from DIS; in the images-only mode frame t is frame t-1 under a
random affine warp, whose flow is known exactly (the authors synthesise pairs from ImageNet
images the same way, with an elastic warp).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..backends import flow as optical_flow
from ..filter.reference import IMAGE_SUFFIXES, ReferenceError, image_lab, read_image
from .config import DataConfig

VIDEO_SUFFIXES = frozenset((".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                            ".mts", ".m2ts", ".mxf", ".y4m", ".wmv", ".flv", ".ogv", ".dv"))

Box = tuple[int, int, int, int]  # top, left, height, width in source pixels
# Frame t-1, frame t (both cropped), the uncropped image the own reference comes from (None
# when an external one is used), backward flow [H, W, 2], validity [H, W] bool.
_Pair = tuple[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray, np.ndarray]


class DataError(ValueError):
    """Training data that cannot be used; the message names the file or folder."""


@dataclass(frozen=True)
class Clip:
    """A video file and the presentation timestamps of its frames, in display order."""

    path: Path
    pts: tuple[int, ...]

    @property
    def pairs(self) -> int:
        return len(self.pts) - 1


def find_files(paths: Sequence[str], suffixes: frozenset[str], what: str) -> list[Path]:
    """Files named in ``paths``, and those under folders in ``paths`` (recursively) with ``suffixes``.

    Raises:
        DataError: a path does not exist, or a folder holds no such file.
    """
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
            if not inside:
                raise DataError(f"no {what} files in {path} (looked for {', '.join(sorted(suffixes))})")
            found += inside
        else:
            raise DataError(f"{what} path {path} does not exist")
    return found


def index_clip(path: Path) -> Clip:
    """Open a video and list its frames (demuxing only, no decoding).

    Raises:
        DataError: unreadable, no video stream, or fewer than two frames.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream")
            stream = container.streams.video[0]
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
    except (av.FFmpegError, OSError) as e:
        raise DataError(f"cannot read the video {path} ({e}); remove it from the training data") from e
    if len(pts) < 2:
        raise DataError(f"the video {path} has {len(pts)} frame(s); training needs clips of at least two frames")
    return Clip(path, tuple(pts))


def read_frames(clip: Clip, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Decode frames ``indices`` of ``clip`` as float32 sRGB [H, W, 3] in [0, 1].

    Each run of consecutive indices costs one seek (to the keyframe before it) and a decode
    up to its end; videos with short keyframe intervals therefore load much faster.
    """
    wanted = sorted(set(indices))
    index_of = {clip.pts[i]: i for i in wanted}
    frames: dict[int, np.ndarray] = {}
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            for run in _runs(wanted):
                container.seek(clip.pts[run[0]], stream=stream)
                for frame in container.decode(stream):
                    if frame.pts in index_of:
                        frames[index_of[frame.pts]] = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
                    if frame.pts is not None and frame.pts >= clip.pts[run[-1]]:
                        break
    except (av.FFmpegError, OSError) as e:
        raise DataError(f"cannot decode {clip.path} ({e}); remove it from the training data") from e
    if missing := [i for i in wanted if i not in frames]:
        raise DataError(f"cannot decode frame(s) {missing} of {clip.path}; remove it from the training data")
    return frames


def _runs(indices: list[int]) -> Iterator[list[int]]:
    """Split sorted indices into runs of consecutive numbers."""
    run: list[int] = []
    for i in indices:
        if run and i != run[-1] + 1:
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def crop_box(shape: Sequence[int], size: tuple[int, int], rng: np.random.Generator,
             area: tuple[float, float] = (1.0, 1.0)) -> Box:
    """A random crop of an image of ``shape`` (H, W, ...) with the aspect ratio of ``size`` (H, W).

    Its area is a random fraction in ``area`` of the largest such crop.
    """
    h, w = shape[:2]
    side = math.sqrt(rng.uniform(*area)) * min(h / size[0], w / size[1])
    ch, cw = max(1, min(h, round(size[0] * side))), max(1, min(w, round(size[1] * side)))
    return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw


def apply_box(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` out of ``image`` and resize it to ``size`` (H, W)."""
    top, left, h, w = box
    crop = np.ascontiguousarray(image[top:top + h, left:left + w])
    shrink = h >= size[0] and w >= size[1]
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def random_affine(size: tuple[int, int], rng: np.random.Generator, rotation: float, shift: float,
                  zoom: float) -> np.ndarray:
    """A random 2 x 3 affine map from output pixel (x, y, 1) to input pixel, about the centre.

    Rotation up to ``rotation`` degrees, shift up to ``shift`` of the size, zoom by a factor
    within 1 +- ``zoom``.
    """
    h, w = size
    angle = math.radians(rng.uniform(-rotation, rotation))
    scale = rng.uniform(1 - zoom, 1 + zoom)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = rng.uniform(-shift, shift, 2) * np.array([w, h])
    linear = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) / scale
    return np.hstack((linear, (centre + offset - linear @ centre)[:, None]))


def affine_flow(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The backward flow [H, W, 2] of the warp ``out(p) = in(matrix @ (p, 1))``."""
    h, w = size
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    mapped_x = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    mapped_y = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return np.stack((mapped_x - xs, mapped_y - ys), -1).astype(np.float32)


class PairDataset(Dataset):
    """Samples (see the module doc) drawn from the videos, images and references of a :class:`DataConfig`.

    Indexing takes any non-negative sample number; the dataset has no length.

    Raises:
        DataError: at construction, for missing or empty folders and unreadable or too short videos.
    """

    def __init__(self, config: DataConfig, seed: int) -> None:
        self.config, self.seed = config, seed
        self.clips = [index_clip(p) for p in find_files(config.videos, VIDEO_SUFFIXES, "video")]
        self.images = find_files(config.images, IMAGE_SUFFIXES, "image")
        self.references = find_files(config.references, IMAGE_SUFFIXES, "reference image")
        if not self.clips and not self.images:
            raise DataError("no training data: data.videos and data.images name no files")
        self._pair_starts = np.cumsum([0] + [c.pairs for c in self.clips])

    def describe(self) -> str:
        return (f"{len(self.clips)} clips ({self._pair_starts[-1]} frame pairs), {len(self.images)} images, "
                f"{len(self.references)} external references")

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, n))
        pairs = int(self._pair_starts[-1])
        k = int(rng.integers(pairs + len(self.images)))
        external = bool(self.references) and rng.random() < self.config.external_reference_probability
        reference = self._image(self.references[rng.integers(len(self.references))]) if external else None
        if k < pairs:
            prev, cur, own_reference, flow, valid = self._video_pair(k, rng, need_reference=not external)
        else:
            prev, cur, own_reference, flow, valid = self._image_pair(self.images[k - pairs], rng)
        reference = own_reference if reference is None else reference
        if rng.random() < 0.5:
            reference = reference[:, ::-1]
        reference = apply_box(reference, crop_box(reference.shape, self.config.size, rng, self.config.reference_crop),
                              self.config.size)
        return {
            "lab": torch.stack((image_lab(prev), image_lab(cur))),
            "reference": image_lab(reference),
            "flow": torch.from_numpy(flow).permute(2, 0, 1).contiguous(),
            "valid": torch.from_numpy(valid.astype(np.float32))[None],
            "same_clip": torch.tensor(0.0 if external else 1.0),
        }

    def _image(self, path: Path) -> np.ndarray:
        try:
            return read_image(path)
        except ReferenceError as e:
            raise DataError(f"cannot use {path} for training: {e}") from e

    def _video_pair(self, k: int, rng: np.random.Generator, need_reference: bool) -> _Pair:
        """Frames t-1, t of pair ``k`` (cropped), a far frame of the clip (uncropped) or None, flow, validity."""
        c = int(np.searchsorted(self._pair_starts, k, side="right")) - 1
        clip, t = self.clips[c], k - int(self._pair_starts[c]) + 1
        r = self._far_frame(len(clip.pts), t, rng) if need_reference else None
        frames = read_frames(clip, [t - 1, t] + ([r] if r is not None else []))
        size = self.config.size
        box = crop_box(frames[t].shape, size, rng)
        prev, cur = apply_box(frames[t - 1], box, size), apply_box(frames[t], box, size)
        L_prev, L_cur = (image_lab(x)[0].numpy() for x in (prev, cur))
        preset = self.config.flow_preset
        backward = optical_flow.flow(L_cur, L_prev, preset)
        # Occluded pixels fail the forward-backward check: where t-1 does not show them, the flow is a guess.
        inconsistency = optical_flow.consistency(backward, optical_flow.flow(L_prev, L_cur, preset))
        valid = ~optical_flow.outside(backward) & (inconsistency < 1)
        return prev, cur, (frames[r] if r is not None else None), backward, valid

    def _far_frame(self, count: int, t: int, rng: np.random.Generator) -> int:
        """A frame at least ``reference_min_gap`` frames from the pair (t-1, t); the farthest if none is."""
        gap = self.config.reference_min_gap
        before, after = max(0, t - gap), max(0, count - t - gap)  # frames [0, t-1-gap] and [t+gap, count-1]
        if before + after == 0:
            return 0 if t - 1 >= count - 1 - t else count - 1
        i = int(rng.integers(before + after))
        return i if i < before else t + gap + (i - before)

    def _image_pair(self, path: Path, rng: np.random.Generator) -> _Pair:
        """An image cropped (frame t-1), its affine warp (frame t), the image itself as reference, flow, validity."""
        size, c = self.config.size, self.config
        image = self._image(path)
        prev = apply_box(image, crop_box(image.shape, size, rng), size)
        matrix = random_affine(size, rng, c.max_rotation, c.max_shift, c.max_zoom)
        cur = cv2.warpAffine(prev, matrix, (size[1], size[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
        backward = affine_flow(matrix, size)
        return prev, cur, image, backward, ~optical_flow.outside(backward)


class StepSampler(Sampler[int]):
    """Sample numbers for steps [start, stop) of one process.

    Step s gives process ``rank`` of ``world`` the numbers ``(s * world + rank) * batch + k``
    for k < batch, so every sample of a run is used once, by one process, at one step.
    """

    def __init__(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch


def worker_init(_: int) -> None:
    """DataLoader worker setup: one thread each, so that workers do not fight over the cores."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
