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
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import vapoursynth as vs

from clips import decode_rgb, sample_clip_path
from media import damaged_copy, write_video
from vsexcolor import open_clip, probe
from vsexcolor.render import source
from vsexcolor.render.video import VideoError

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


def same_size_films(tmp_path: Path, rgb: np.ndarray) -> tuple[Path, Path]:
    """Two y4m files of different frames, frame counts and sizes, of the same length in bytes
    (180 frames of 64x48 and 120 of 87x53, gray), as fixed-size intermediates are."""
    other = np.stack([cv2.resize(f, (87, 53), interpolation=cv2.INTER_AREA) for f in rgb[::-1][:120]])
    first = write_video(tmp_path / "first.y4m", rgb, codec="rawvideo", pix_fmt="gray", audio=False)
    second = write_video(tmp_path / "second.y4m", other, codec="rawvideo", pix_fmt="gray", audio=False)
    assert first.stat().st_size == second.stat().st_size
    return first, second


def test_a_file_is_indexed_once_and_again_when_it_changes(rgb, tmp_path, index_folder):
    film, replacement = same_size_films(tmp_path, rgb)
    with indexings() as first:
        probe(film, progress=False)
    assert first
    assert [p.name for p in index_folder.iterdir() if p.name.startswith("first.y4m-")]
    with indexings() as again:
        info = probe(film, progress=False)
        clip = open_clip(info)
        planes(clip, FRAMES - 1)
    assert again == []
    # Replaced as `cp -p` does: new bytes in the same file, its size and times put back.
    stat = film.stat()
    shutil.copyfile(replacement, film)
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (film.stat().st_size, film.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    pts, decoded, _ = front_to_back(replacement)
    with indexings() as changed:
        info = probe(film, progress=False)
    assert changed
    assert info.pts == tuple(pts) and (info.width, info.height) == (87, 53)
    clip = open_clip(info)
    assert all(same(planes(clip, n), decoded[n]) for n in late_first(len(pts)))


def test_an_index_that_does_not_match_its_file_is_made_again(rgb, tmp_path, index_folder):
    """The name says the file is unchanged, the index is another file's (its hashes differ):
    found out from the first frame and made again, once."""
    film, replacement = same_size_films(tmp_path, rgb)
    stale = probe(replacement, progress=False).index
    for made in index_folder.glob(f"{stale.name}.*"):
        shutil.copyfile(made, made.with_name(made.name.replace(stale.name, source.index_file(film).name)))
    pts, decoded, _ = front_to_back(film)
    with indexings() as seen:
        info = probe(film, progress=False)
    assert seen and info.pts == tuple(pts)
    assert same(planes(open_clip(info), FRAMES - 1), decoded[-1])


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


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[Path]:
    """A folder this process can read but not write: ``folder`` (made here), by its mode;
    where the tests run as root, whom the mode does not stop, by the immutable flag too (ext4,
    xfs), and where the file system has no such flag, /sys, where no one makes files."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    immutable = root and subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                        check=False).returncode == 0
    try:
        yield Path("/sys") if root and not immutable else folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_an_index_folder_that_cannot_be_written_gives_way_to_the_users_own(rgb, tmp_path, monkeypatch):
    film = write_video(tmp_path / "film.mkv", rgb, codec="ffv1", audio=False)
    decoded = front_to_back(film)[1]
    own = tmp_path / "cache" / "vsexcolor" / "index"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with unwritable(tmp_path / "shared") as shared:
        monkeypatch.setenv("VSEXCOLOR_INDEX_DIR", str(shared))
        info = probe(film, progress=False)
        assert info.index.parent == own and list(own.glob(f"{info.index.name}.*.bsindex"))
        assert same(planes(open_clip(info), FRAMES - 1), decoded[-1])
        # A node handed the shared folder, which it can read but not write, and lacks the index.
        node = dataclasses.replace(info, index=shared / info.index.name)
        with indexings() as seen:
            assert same(planes(open_clip(node), FRAMES - 1), decoded[-1])
        assert seen == []  # it read the index in its own folder
        assert list(shared.glob("*.bsindex")) == []


def test_a_name_of_long_multibyte_characters_is_indexed(rgb, tmp_path, index_folder):
    film = write_video(tmp_path / ("\N{FILM FRAMES}" * 60 + ".mkv"), rgb[:20], codec="ffv1", audio=False)
    info = probe(film, progress=False)
    assert info.num_frames == 20 and len(info.index.name.encode()) <= 100
    assert same(planes(open_clip(info), 19), front_to_back(film)[1][19])


CONCURRENT = """
import sys
import vapoursynth as vs
from vsexcolor import probe
seen = []
vs.core.add_log_handler(lambda kind, message: seen.append(message) if "index progress" in message else None)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
info = probe(sys.argv[1], progress=False)
print(bool(seen), info.num_frames)
"""


def test_processes_that_start_together_index_a_file_once(rgb, tmp_path):
    film = write_video(tmp_path / "film.mp4", np.concatenate([rgb] * 4), audio=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    workers = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(film)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(3)]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n", worker.stderr.read()
    for worker in workers:  # all at once, once all have started
        worker.stdin.write("go\n")
        worker.stdin.flush()
    reports = [worker.communicate(timeout=300) for worker in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in reports]
    assert sorted(out.split()[0] for out, _ in reports) == ["False", "False", "True"], reports
    assert {out.split()[1] for out, _ in reports} == {str(4 * FRAMES)}


def test_a_still_image_is_a_one_frame_clip(rgb, tmp_path):
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), cv2.cvtColor(rgb[0], cv2.COLOR_RGB2BGR))
    info = probe(still, progress=False)
    assert info.num_frames == 1
    assert np.array_equal(np.stack(planes(open_clip(info), 0), axis=-1), rgb[0])  # R, G, B planes


def test_an_input_that_cannot_be_indexed_fails_in_one_line_and_leaves_no_index(tmp_path, index_folder):
    bilevel = tmp_path / "bilevel.png"  # 1 bit a pixel: BestSource indexes it, then refuses the format
    with av.open(str(bilevel), "w") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = W, H, "monob"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((H, W), np.uint8), format="gray").reformat(
            format="monob")))
        out.mux(stream.encode(None))
    with pytest.raises(VideoError) as error:
        probe(bilevel, progress=False)
    assert "\n" not in str(error.value) and "bilevel.png" in str(error.value)
    assert list(index_folder.glob("bilevel.png-*.bsindex")) == []


VSPIPE_SCRIPT = """
from vsexcolor import open_clip, probe
open_clip(probe({film!r})).set_output()
"""


def test_vspipe_prints_nothing_but_the_clip(rgb, tmp_path):
    film = write_video(tmp_path / "film.mkv", rgb[:20], codec="ffv1", audio=False)
    script = tmp_path / "read.vpy"
    script.write_text(VSPIPE_SCRIPT.format(film=str(film)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for run in ("indexing", "reading the index back"):
        done = subprocess.run([str(Path(sys.executable).with_name("vspipe")), "--info", str(script)],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, (run, done.stderr)
        assert "Frames: 20" in done.stdout
