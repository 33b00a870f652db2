"""Reading video files (video.probe, video.open_clip through vsexcolor.render.source: BestSource).

Frame n of a file's clip is the n-th frame of a front-to-back decode, with its timestamp,
whatever order frames are asked in (a late start seeks), for H.264 with B-frames, MPEG-2 in
a program stream and as a bare stream, FFV1, and a file of exact repeats (where BestSource
cannot seek and decodes from the start instead). A damaged packet changes only the frames decoded from it.
A file is indexed once: later runs read the index back, a changed file is indexed anew, and
a machine that cannot read the index's folder (a farm node) makes one in its own.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import vapoursynth as vs

from clips import decode_rgb, sample_clip_path
from media import damaged_copy, write_video
from vsexcolor import open_clip, probe

W, H = 64, 48
#: Frames per test file: BestSource decodes the first 100 from the start rather than seek,
#: so the later ones are where seeking is tested.
FRAMES = 180
GOP = 12


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """Three shots of real footage, every frame different."""
    return np.concatenate([decode_rgb(sample_clip_path("bikes"), 80, (W, H)),
                           decode_rgb(sample_clip_path("carphone_pristine"), 60, (W, H)),
                           decode_rgb(sample_clip_path("bigbuckbunny"), 40, (W, H))])


def front_to_back(path: Path) -> tuple[list[int | None], list[list[np.ndarray]], list[str]]:
    """Every frame's timestamp, planes and picture type, decoded by PyAV from the start."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    planes = [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy() for p in f.planes]
              for f in frames]
    return [f.pts for f in frames], planes, [av.video.frame.PictureType(f.pict_type).name for f in frames]


def planes(clip: vs.VideoNode, n: int) -> list[np.ndarray]:
    frame = clip.get_frame(n)
    return [np.asarray(frame[p]).copy() for p in range(frame.format.num_planes)]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def late_first(count: int, seed: int = 0) -> list[int]:
    """Every frame number once: the last ones first (a late start), then the rest shuffled."""
    rest = np.random.default_rng(seed).permutation(count - 10).tolist()
    return list(range(count - 1, count - 11, -1)) + rest


@contextlib.contextmanager
def indexings() -> Iterator[list[str]]:
    """BestSource's indexing progress messages meanwhile: at least one each time it indexes a
    file (decoding it whole), none when it reads an index back."""
    seen: list[str] = []
    handle = vs.core.add_log_handler(lambda kind, message: seen.append(message) if "index progress" in message
                                     else None)
    try:
        yield seen
    finally:
        vs.core.remove_log_handler(handle)


def repeats(rgb: np.ndarray) -> np.ndarray:
    """FRAMES frames of a 20-frame clip played back and forth: every stretch of frames
    recurs, so the frames at a seek's landing point cannot say where it is."""
    clip = np.concatenate([rgb[:20], rgb[19::-1]])
    return np.stack([clip[n % len(clip)] for n in range(FRAMES)])


CASES = {
    "h264-b-frames": ("film.mp4", dict(codec="libx264", gop=GOP), "B"),
    "mpeg2-program-stream": ("film.mpg", dict(codec="mpeg2video", gop=GOP, b_frames=2), "B"),
    # No timestamps in the file: the decoders make them up, BestSource's build none for the
    # first and last frames; they are filled in from the rest.
    "mpeg2-elementary-stream": ("film.m2v", dict(codec="mpeg2video", gop=GOP, b_frames=2), "B"),
    "ffv1": ("film.mkv", dict(codec="ffv1", pix_fmt="gray", gop=GOP), "I"),
    "ffv1-exact-repeats": ("film.mkv", dict(codec="ffv1", pix_fmt="gray", gop=GOP), "I"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_frame_n_is_the_nth_frame_of_a_front_to_back_decode_in_any_order(rgb, tmp_path, case):
    name, options, kind = CASES[case]
    frames = repeats(rgb) if case.endswith("repeats") else rgb
    film = write_video(tmp_path / name, frames, audio=False, **options)
    pts, decoded, kinds = front_to_back(film)
    assert len(decoded) == FRAMES and kind in kinds  # the file is what the case says
    info = probe(film, progress=False)
    assert info.pts == tuple(pts) and not info.retimed
    clip = open_clip(info)
    assert clip.num_frames == FRAMES
    for n in late_first(FRAMES):
        assert same(planes(clip, n), decoded[n]), f"frame {n}"


def test_a_damaged_packet_changes_only_the_frames_decoded_from_it(rgb, tmp_path):
    clean = write_video(tmp_path / "clean.mp4", rgb, audio=False, gop=GOP)
    damaged = damaged_copy(clean, tmp_path / "damaged.mp4", packet=130)
    pts, decoded, _ = front_to_back(damaged)
    undamaged = front_to_back(clean)[1]
    hit = [n for n, (a, b) in enumerate(zip(decoded, undamaged, strict=True)) if not same(a, b)]
    assert 0 < len(hit) <= GOP, hit  # the damage shows, up to the next keyframe
    info = probe(damaged, progress=False)
    assert info.pts == tuple(pts)
    in_order = [planes(open_clip(info), n) for n in range(FRAMES)]
    late = open_clip(info)
    assert all(same(planes(late, n), in_order[n]) for n in late_first(FRAMES, seed=1))
    # The same frames are damaged, and every other is PyAV's. The damaged ones are FFmpeg's
    # concealment, which differs from one build or thread count to another (PyAV's own, by
    # its thread settings, up to 6 levels on average here): not compared.
    assert [n for n in range(FRAMES) if not same(in_order[n], undamaged[n])] == hit
    assert all(same(in_order[n], decoded[n]) for n in range(FRAMES) if n not in hit)


def test_a_file_is_indexed_once_and_again_when_it_changes(rgb, tmp_path, index_folder):
    film = write_video(tmp_path / "film.mkv", rgb, codec="ffv1", audio=False)
    with indexings() as first:
        probe(film, progress=False)
    assert first
    assert [p.name for p in index_folder.iterdir() if p.name.startswith("film.mkv-")]
    with indexings() as again:
        info = probe(film, progress=False)
        clip = open_clip(info)
        planes(clip, FRAMES - 1)
    assert again == []
    stat = film.stat()
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten, say
    with indexings() as changed:
        probe(film, progress=False)
    assert changed


def test_a_machine_that_cannot_read_the_index_folder_indexes_into_its_own(rgb, tmp_path, monkeypatch):
    film = write_video(tmp_path / "film.mkv", rgb, codec="ffv1", audio=False)
    info = probe(film, progress=False)
    decoded = front_to_back(film)[1]
    # A farm node: the driver's index folder is not there, and the node has a folder of its own.
    node = dataclasses.replace(info, index=tmp_path / "driver-only" / info.index.name)
    monkeypatch.setenv("VSEXCOLOR_INDEX_DIR", str(tmp_path / "node-indexes"))
    for task in range(2):
        with indexings() as seen:
            clip = open_clip(node)
            assert same(planes(clip, FRAMES - 1), decoded[-1])
        assert bool(seen) == (task == 0), seen  # indexed by its first task only
    assert not (tmp_path / "driver-only").exists()
