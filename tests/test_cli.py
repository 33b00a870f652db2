"""The `vsexcolor` command line on real video files.

colorize: what it writes (the filter's frames, the input's luma, timestamps and audio),
reference forms, ranges, formats, resuming after Ctrl-C or a crash, overwrite protection
and bad input; demo; and every command the README shows.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import vapoursynth as vs

import vsexcolor
from clips import decode_rgb, sample_clip_path
from media import crash_encoder_at, write_image, write_video
from vsexcolor import commands
from vsexcolor.render import encode
from vsexcolor import open_clip, probe

W, H = 64, 48
PIXELS = 48 * 64  # tiny internal resolution keeps the nets fast on CPU
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", str(PIXELS)]


# --- helpers ---------------------------------------------------------------------------------

def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def seconds(path: Path) -> list[Fraction]:
    return [f.pts * f.time_base for f in decoded(path)]


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def planes(clip: vs.VideoNode, n: int) -> list[np.ndarray]:
    frame = clip.get_frame(n)
    return [np.asarray(frame[p]).copy() for p in range(frame.format.num_planes)]


def file_planes(path: Path) -> list[list[np.ndarray]]:
    clip = open_clip(probe(path, progress=False))
    return [planes(clip, n) for n in range(clip.num_frames)]


def messages(err: str) -> list[str]:
    """stderr lines as they end up on a terminal (progress bars redraw with \\r)."""
    return [kept for line in err.split("\n") if (kept := line.split("\r")[-1].strip())]


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def run(capsys):
    """Run the command line in this process: (exit code, stderr)."""
    def vsexcolor_cli(*args: object) -> tuple[int, str]:
        capsys.readouterr()
        code = commands.main([str(a) for a in args])
        return code, capsys.readouterr().err
    return vsexcolor_cli


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """Six real frames: three of one shot, then a cut to another."""
    return np.concatenate([decode_rgb(sample_clip_path("bikes"), 3, (W, H)),
                           decode_rgb(sample_clip_path("carphone_pristine"), 3, (W, H))])


@pytest.fixture(scope="module")
def media(tmp_path_factory, rgb) -> Path:
    folder = tmp_path_factory.mktemp("media")
    write_video(folder / "film.mp4", rgb)
    write_image(folder / "still.png", rgb[0])
    write_image(folder / "other.png", rgb[4])
    return folder


@pytest.fixture(scope="module")
def devc_full(tmp_path_factory, media, devc_weights) -> Path:
    """An uninterrupted DEVC run over the whole film, lossless."""
    out = tmp_path_factory.mktemp("devc") / "full.mkv"
    code = commands.main(["colorize", str(media / "film.mp4"), "--ref", str(media / "still.png"), "-o", str(out),
                     "--backend", "devc", "--weights", str(devc_weights), "--codec", "ffv1", *TINY])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def propagate_full(tmp_path_factory, media) -> Path:
    out = tmp_path_factory.mktemp("propagate") / "full.mkv"
    code = commands.main(["colorize", str(media / "film.mp4"), "--ref", str(media / "still.png"), "-o", str(out),
                     "--backend", "propagate", "--codec", "ffv1", *TINY])
    assert code == 0
    return out


# --- what colorize writes ------------------------------------------------------------------------

def test_the_file_holds_the_filters_frames_on_the_inputs_luma(media, devc_full, devc_weights):
    film = media / "film.mp4"
    written = file_planes(devc_full)
    source = open_clip(probe(film, progress=False))
    assert len(written) == source.num_frames == 6
    for n, frame in enumerate(written):
        assert np.array_equal(frame[0], planes(source, n)[0])  # luma untouched, bit for bit
        assert frame[1].std() > 0 or frame[2].std() > 0  # chroma was predicted
    # The same code path as the filter: frames 0 and 3 start the two scenes.
    filtered = vsexcolor.colorize(source, media / "still.png", backend="devc", weights=devc_weights,
                                  pixels=PIXELS)
    for n in (0, 3):
        assert all(np.array_equal(a, b) for a, b in zip(written[n], planes(filtered, n), strict=True))


def test_timestamps_and_audio_are_kept(media, devc_full):
    film = media / "film.mp4"
    assert seconds(devc_full) == seconds(film)
    assert audio_payloads(devc_full) == audio_payloads(film) != []


def test_progress_and_summary_go_to_stderr(run, media, tmp_path):
    code, err = run("colorize", media / "film.mp4", "--ref", media / "still.png", "-o", tmp_path / "out.mp4",
                    "--backend", "propagate", *TINY)
    assert code == 0
    assert re.search(r"colorize: 100%.*6/6.*frame/s", err.replace("\r", "\n"))
    assert messages(err)[-1].startswith(
        f"vsexcolor colorize: wrote {tmp_path / 'out.mp4'} (6 frames, 64x48 yuv420p, h264 crf 18, "
        "1 audio stream(s) copied) with backend propagate in 2 shots; colorized 6 frames in ")
    assert not (tmp_path / "out.mp4.parts").exists()


def test_the_backend_note_comes_once_from_the_command_run(run, media, tmp_path, monkeypatch):
    # The filter warns each time it is built; a command builds it to check, to plan and to render.
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "no-weights"))
    chain = tmp_path / "chain.vpy"
    chain.write_text(f"import vsexcolor\nfrom vsexcolor import open_clip, probe\n"
                     f"vsexcolor.colorize(open_clip(probe({str(media / 'film.mp4')!r}, progress=False)), "
                     f"{str(media / 'still.png')!r}, pixels={PIXELS}).set_output()\n")
    for command in (["colorize", media / "film.mp4", "--ref", media / "still.png", "-o", tmp_path / "out.mkv", *TINY],
                    ["render", chain, "-o", tmp_path / "chain.mkv"]):
        code, err = run(*command)
        assert code == 0, err
        notes = [line for line in messages(err) if "weight-free" in line]
        assert len(notes) == 1 and notes[0].startswith(
            f"vsexcolor {command[0]}: note: using the weight-free 'propagate' backend, since DEVC has no weights: "
            f"no DEVC weights at {tmp_path / 'no-weights'}"), err


@pytest.mark.parametrize("refs,given", [
    (["--ref", "still.png"], {0: "still.png"}),
    # A reference inside the second shot (frames 3-5) serves all of it: no start beyond the cut.
    (["--ref-at", "0=still.png", "--ref-at", "4=other.png"], {0: "still.png", 4: "other.png"}),
    (["--propagate"], None),  # the input's own colour first frames
], ids=["ref", "ref-at", "propagate"])
def test_reference_forms(run, media, tmp_path, refs, given):
    film, out = media / "film.mp4", tmp_path / "out.mkv"
    refs = [a.replace("still.png", str(media / "still.png")).replace("other.png", str(media / "other.png"))
            for a in refs]
    code, err = run("colorize", film, *refs, "-o", out, "--backend", "propagate", "--codec", "ffv1", *TINY)
    assert code == 0, err
    assert "in 2 shots;" in messages(err)[-1]
    # Every frame is the filter's, coloured from the reference each frame was given.
    clip = open_clip(probe(film, progress=False))
    ref = None if given is None else {frame: media / name for frame, name in given.items()}
    expected = vsexcolor.colorize(clip, ref, propagate=given is None, backend="propagate", pixels=PIXELS)
    written = file_planes(out)
    for n in range(clip.num_frames):
        assert all(np.array_equal(a, b) for a, b in zip(written[n], planes(expected, n), strict=True)), n
    # And that tells the references apart: the second shot from still.png alone is another colour.
    if given and len(given) > 1:
        alone = vsexcolor.colorize(clip, media / "still.png", backend="propagate", pixels=PIXELS)
        assert all(not np.array_equal(written[n][1], planes(alone, n)[1]) for n in (3, 4, 5))
        assert all(np.array_equal(written[n][1], planes(alone, n)[1]) for n in (0, 1, 2))


def test_a_range_is_coloured_as_in_the_whole_run_and_starts_at_zero(run, media, propagate_full, tmp_path):
    out = tmp_path / "range.mkv"
    code, err = run("colorize", media / "film.mp4", "--ref", media / "still.png", "-o", out, "--start", 1,
                    "--end", 4, "--backend", "propagate", "--codec", "ffv1", *TINY)
    assert code == 0, err
    whole = file_planes(propagate_full)
    part = file_planes(out)
    assert len(part) == 4
    assert all(np.array_equal(a, b) for n in range(4) for a, b in zip(part[n], whole[n + 1]))
    film_times = seconds(media / "film.mp4")
    assert seconds(out) == [t - film_times[1] for t in film_times[1:5]]
    assert 0 < len(audio_payloads(out)) < len(audio_payloads(media / "film.mp4"))


def test_variable_frame_rate_keeps_every_timestamp(run, rgb, tmp_path):
    vfr = write_video(tmp_path / "vfr.mkv", rgb[:5], pts=[0, 40, 80, 200, 360], time_base=Fraction(1, 1000))
    out = tmp_path / "out.mkv"
    code, err = run("colorize", vfr, "--ref", write_image(tmp_path / "still.png", rgb[0]), "-o", out,
                    "--backend", "propagate", *TINY)
    assert code == 0, err
    assert "variable frame rate: every frame keeps its timestamp" in err
    assert seconds(out) == seconds(vfr) == [Fraction(t, 1000) for t in (0, 40, 80, 200, 360)]


@pytest.mark.parametrize("source,codec,written", [
    ("gray", "h264", "yuv420p"),  # colour needs chroma planes: 4:2:0 of the same depth
    ("yuv422p10le", "h265", "yuv422p10le"),  # the encoder takes it: not converted
    ("rgb24", "h264", "yuv444p"),  # x264 has no RGB: full-resolution YUV
    ("rgb24", "ffv1", "gbrp10le"),  # FFV1 has no 8-bit planar RGB: the next depth up
])
def test_pixel_formats(run, rgb, tmp_path, source, codec, written):
    name, codec_in = ("in.mov", "png") if source == "rgb24" else ("in.mkv", "ffv1")
    clip = write_video(tmp_path / name, rgb[:2], pix_fmt=source, codec=codec_in, audio=False)
    out = tmp_path / "out.mkv"
    code, err = run("colorize", clip, "--ref", write_image(tmp_path / "still.png", rgb[0]), "-o", out,
                    "--codec", codec, "--backend", "propagate", *TINY)
    assert code == 0, err
    frames = decoded(out)
    assert [f.format.name for f in frames] == [written] * 2


@pytest.mark.parametrize("codec", ["h264", "h265", "ffv1"])
def test_one_frame_scenes_are_encoded_right(run, rgb, tmp_path, codec):
    # Every frame a cut: each scene shorter than the encoders' B-frame delay.
    film = write_video(tmp_path / "film.mkv", rgb[[0, 3, 1, 4]], codec="ffv1", audio=False)
    out = tmp_path / ("out.mkv" if codec == "ffv1" else "out.mp4")
    code, err = run("colorize", film, "--ref", write_image(tmp_path / "still.png", rgb[0]), "-o", out,
                    "--codec", codec, "--backend", "propagate", *TINY)
    assert code == 0, err
    assert "in 4 shots;" in messages(err)[-1]
    assert seconds(out) == seconds(film)


def test_h265_in_mp4_is_tagged_for_apples_players(run, rgb, tmp_path):
    clip = write_video(tmp_path / "in.mkv", rgb[:2], codec="ffv1", audio=False)
    out = tmp_path / "out.mp4"
    code, err = run("colorize", clip, "--ref", write_image(tmp_path / "still.png", rgb[0]), "-o", out,
                    "--codec", "h265", "--backend", "propagate", *TINY)
    assert code == 0, err
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1"


# --- interruption and resume ---------------------------------------------------------------------

def test_resume_after_a_crash_continues_at_the_unfinished_scene(run, media, devc_full, devc_weights, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "out.mkv"
    command = ["colorize", media / "film.mp4", "--ref", media / "still.png", "-o", out, "--backend", "devc",
               "--weights", devc_weights, "--codec", "ffv1", *TINY]
    crash_encoder_at(monkeypatch, 4)
    code, err = run(*command)
    assert code == 2
    assert messages(err)[-1] == (f"vsexcolor colorize: failed at frame 4: injected failure; the finished parts "
                                 f"are kept in {out}.parts: run the same command with --resume to continue")
    parts = tmp_path / "out.mkv.parts"
    assert listing(tmp_path) == {"out.mkv.parts", "out.mkv.parts/manifest.json",
                                 "out.mkv.parts/frames-00000000-00000002.mp4"}
    monkeypatch.undo()

    code, err = run(*command)
    assert code == 2 and "holds an unfinished run; add --resume to continue it, or --overwrite" in err
    code, err = run(*command[:-4], "--codec", "h264", *TINY, "--resume")
    assert code == 2 and "was started with other settings (codec was 'ffv1', now 'h264'; crf was None, now 18)" in err
    # Leftovers of a killed run: a half-written scene and a part past a gap are not trusted.
    (parts / "incomplete.mp4").write_bytes(b"half")
    (parts / "frames-00000005-00000005.mp4").write_bytes(b"stray")

    code, err = run(*command, "--resume")
    assert code == 0, err
    assert "colorized 3 frames" in messages(err)[-1]
    assert not parts.exists()
    assert all(np.array_equal(a, b)
               for x, y in zip(file_planes(out), file_planes(devc_full), strict=True) for a, b in zip(x, y))
    assert seconds(out) == seconds(devc_full)
    assert audio_payloads(out) == audio_payloads(devc_full)


def test_a_resume_notices_a_changed_reference_in_a_folder_but_not_a_new_contact_sheet(run, media, rgb, tmp_path,
                                                                                        monkeypatch):
    refs = tmp_path / "refs"
    refs.mkdir()
    write_image(refs / "000000.png", rgb[0])
    write_image(refs / "contact-sheet.png", rgb[1])
    out = tmp_path / "out.mkv"
    command = ["colorize", media / "film.mp4", "--refs", refs, "-o", out, "--backend", "propagate", "--codec", "ffv1",
               *TINY]
    crash_encoder_at(monkeypatch, 4)
    assert run(*command)[0] == 2
    monkeypatch.undo()
    write_image(refs / "contact-sheet.png", rgb[2])  # `vsexcolor shots` run again
    write_image(refs / "000000.png", rgb[3])
    code, err = run(*command, "--resume")
    assert code == 2 and "was started with other settings (references 000000.png was '" in err, err
    assert "contact-sheet" not in err
    write_image(refs / "000000.png", rgb[0])
    code, err = run(*command, "--resume")
    assert code == 0, err
    assert "colorized 3 frames" in messages(err)[-1]


def test_ctrl_c_keeps_finished_scenes_and_resume_matches_an_uninterrupted_run(run, rgb, tmp_path):
    # A long second scene, so that Ctrl-C lands while it is being colorized (propagate runs
    # it at about 45 frames/s at this size: a window of over two seconds).
    frames = np.concatenate([rgb[:3], decode_rgb(sample_clip_path("carphone_pristine"), 120, (W, H))])
    film = write_video(tmp_path / "film.mp4", frames)
    still = write_image(tmp_path / "still.png", rgb[0])
    out = tmp_path / "out.mp4"
    command = ["colorize", str(film), "--ref", str(still), "-o", str(out), "--backend", "propagate", *TINY]
    first_scene = tmp_path / "out.mp4.parts" / "frames-00000000-00000002.mp4"
    # A shell starts background jobs with SIGINT ignored, and a child inherits that (a test
    # run started with `&` would see Ctrl-C do nothing): give the child the terminal's default.
    child = subprocess.Popen([sys.executable, "-m", "vsexcolor", *command], stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Generous: on a loaded 2-core machine the child's imports alone can take a minute.
        deadline = time.monotonic() + 400
        while not first_scene.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first_scene.exists() and child.poll() is None, "the first scene never finished in time"
        child.send_signal(signal.SIGINT)
        err = child.communicate(timeout=60)[1]
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "stopped at frame" in err and "run the same command with --resume to continue" in err
    assert not out.exists()
    assert sorted(p.name for p in first_scene.parent.iterdir()) == [first_scene.name, "manifest.json"]

    code, err = run(*command, "--resume")
    assert code == 0, err
    assert "colorized 120 frames" in messages(err)[-1]
    code, err = run(*command[:5], tmp_path / "uninterrupted.mp4", *command[6:])
    assert code == 0, err
    # x264 is deterministic, so equal frames give equal packets.
    assert _video_packets(out) == _video_packets(tmp_path / "uninterrupted.mp4")
    assert seconds(out) == seconds(film)


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


# --- overwrite protection and bad input -------------------------------------------------------------

def test_an_existing_output_is_kept_unless_overwrite(run, media, tmp_path):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"precious")
    command = ["colorize", media / "film.mp4", "--ref", media / "still.png", "-o", out, "--backend", "propagate",
               *TINY]
    code, err = run(*command)
    assert code == 2
    assert messages(err) == [f"vsexcolor colorize: {str(out)!r} exists; add --overwrite to replace it"]
    assert out.read_bytes() == b"precious" and listing(tmp_path) == {"out.mkv"}
    code, err = run(*command, "--overwrite")
    assert code == 0, err
    assert len(decoded(out)) == 6


def _bad(media: Path, tmp: Path) -> dict[str, tuple[list[object], str]]:
    """name: (arguments after the input, the error message's pattern); ``tmp/notes.txt`` is text."""
    film, still, text = media / "film.mp4", media / "still.png", tmp / "notes.txt"
    return {
        "missing input": ([tmp / "nope.mp4", "--ref", still], r"input '.*nope\.mp4' does not exist"),
        "unreadable input": ([text, "--ref", still],
                             r"cannot read '.*notes\.txt' as a video: Invalid data found when processing input"),
        "missing reference": ([film, "--ref", tmp / "nope.png"], r"reference image '.*nope\.png' does not exist"),
        "unreadable reference": ([film, "--ref", text], r"'.*notes\.txt' is not a PNG, JPEG, TIFF, WebP or BMP image"),
        "no reference": ([film], r"no colour reference given and no DDColor keyframe model in .* or run "
                                 r"`vsexcolor download ddcolor`\."),
        "keyframe model not a checkpoint": (
            [film, "--keyframe-model", text], r"--keyframe-model: .*notes\.txt is not a PyTorch checkpoint \(not a "
                                              r"file torch\.save writes\)\. Pass the path of a valid DDColor checkpoint, "
                                              r"or one of ddcolor_modelscope, .*ddcolor_paper_tiny\."),
        "missing output folder": ([film, "--ref", still, "-o", tmp / "no" / "out.mkv"],
                                  r"the output folder '.*no' does not exist"),
        "output folder is a file": ([film, "--ref", still, "-o", text / "out.mkv"],
                                    r"the output folder '.*notes\.txt' is a file, not a folder"),
        "output folder not writable": ([film, "--ref", still, "-o", "/proc/out.mkv"],  # as a read-only mount
                                       r"cannot write into '/proc' \(No such file or directory\): choose another -o"),
        "output is the input": ([film, "--ref", still, "-o", film, "--overwrite"],
                                r"the output would replace the input"),
        "container lacks codec": ([film, "--ref", still, "-o", tmp / "out.mov", "--codec", "ffv1"],
                                  r"--codec ffv1 is written in Matroska, not \.mov: name the output \.mkv"),
        "container FFmpeg writes, players do not read": (
            [film, "--ref", still, "-o", tmp / "out.mp4", "--codec", "ffv1"],
            r"--codec ffv1 is written in Matroska, not \.mp4: name the output \.mkv"),
        "unknown container": ([film, "--ref", still, "-o", tmp / "out.xyz"],
                              r"FFmpeg has no container for the \.xyz extension"),
        "crf of a lossless codec": ([film, "--ref", still, "--codec", "ffv1", "--crf", 10],
                                    r"--crf does not apply to ffv1, which is lossless"),
        "range outside the clip": ([film, "--ref", still, "--start", 4, "--end", 6],
                                   r"--start and --end must satisfy 0 <= start <= end <= 5 .*got 4 and 6"),
        "keyframe outside the clip": ([film, "--ref-at", f"9={still}"],
                                      r"--ref-at frame 9 is past the input's last frame, 5"),
        "reference too large": ([film, "--ref", tmp / "huge.png"],
                                r"reference image '.*huge\.png' is 20000x20000, larger than the 16384 pixels a side "
                                r"vsexcolor reads: scale it down"),
        "input frames too large": ([tmp / "huge.y4m", "--ref", still],
                                   r"'.*huge\.y4m' has 8200x8200 frames, more than the 67 megapixels vsexcolor "
                                   r"reads: scale it down first"),
    }


def _huge_files(folder: Path) -> None:
    """A PNG and a video of a few bytes each that declare huge pictures."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
                                      + struct.pack(">I", zlib.crc32(ihdr)))
    (folder / "huge.y4m").write_bytes(b"YUV4MPEG2 W8200 H8200 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))


@pytest.mark.parametrize("case", list(_bad(Path("m"), Path("t"))))
def test_bad_input_gives_one_line_and_writes_nothing(run, media, tmp_path, case):
    args, pattern = _bad(media, tmp_path)[case]
    (tmp_path / "notes.txt").write_text("not a picture")
    _huge_files(tmp_path)
    before, media_before = listing(tmp_path), listing(media)
    code, err = run("colorize", *args, "--backend", "propagate", *TINY)
    assert code == 2
    lines = messages(err)
    assert len(lines) == 1 and re.fullmatch(rf"vsexcolor colorize: .*{pattern}.*", lines[0]), repr(err)
    assert listing(tmp_path) == before and listing(media) == media_before


def test_an_input_changed_after_it_was_read_is_named_and_the_finished_scenes_kept(run, rgb, tmp_path, monkeypatch):
    from vsexcolor.render.workfolder import count_frames

    # Scenes 0-29, 30-59, 60-89: the filter reads up to a second ahead of the frame it makes.
    frames = np.concatenate([decode_rgb(sample_clip_path(name), 30, (W, H))
                             for name in ("bikes", "carphone_pristine", "bigbuckbunny")])
    film = write_video(tmp_path / "film.mp4", frames)
    still = write_image(tmp_path / "still.png", rgb[0])
    from vsexcolor.commands import colorize as command

    probe_first = command.probe

    def probe_then_shorten(path, progress=True):
        info = probe_first(path, progress)
        write_video(film, frames[:75])  # replaced by a shorter file while the run starts
        return info

    monkeypatch.setattr(command, "probe", probe_then_shorten)
    out = tmp_path / "out.mkv"
    code, err = run("colorize", film, "--ref", still, "-o", out, "--backend", "propagate", *TINY)
    assert code == 2
    # The filter reads ahead of the frame it makes, so the frame named is an earlier one.
    failed = re.fullmatch(rf"vsexcolor colorize: failed at frame (\d+): {re.escape(repr(str(film)))} ended after 75 "
                          rf"frames, not 90; has it changed\?; the finished parts are kept in {re.escape(str(out))}"
                          r"\.parts: run the same command with --resume to continue", messages(err)[-1])
    assert failed, err
    assert not out.exists()
    # The scenes finished before that frame are there, whole.
    kept = {p.name: count_frames(p) for p in (tmp_path / "out.mkv.parts").glob("frames-*.mp4")}
    finished = [(a, b) for a, b in ((0, 29), (30, 59)) if b < int(failed[1])]
    assert finished and kept == {f"frames-{a:08d}-{b:08d}.mp4": b - a + 1 for a, b in finished}, (failed[1], kept)


def test_a_run_that_fails_before_its_first_part_is_done_promises_no_parts(run, media, tmp_path, monkeypatch):
    crash_encoder_at(monkeypatch, 0)
    out = tmp_path / "out.mkv"
    code, err = run("colorize", media / "film.mp4", "--ref", media / "still.png", "-o", out, "--backend",
                    "propagate", *TINY)
    assert code == 2 and messages(err)[-1] == "vsexcolor colorize: failed at frame 0: injected failure"
    assert listing(tmp_path) == set()


def test_files_without_frames_or_video_are_refused(run, media, tmp_path):
    empty = tmp_path / "empty.mkv"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        chunk.sample_rate = 48000
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    for path, message in ((empty, "has no video frames"), (sound, "has no video stream")):
        before = listing(tmp_path)
        code, err = run("colorize", path, "--ref", media / "still.png", "--backend", "propagate")
        lines = messages(err)
        assert code == 2 and len(lines) == 1
        assert lines[0].startswith(f"vsexcolor colorize: {str(path)!r} {message}")
        assert listing(tmp_path) == before


def test_a_codec_this_pyav_lacks_is_refused(run, media, tmp_path, monkeypatch):
    monkeypatch.setitem(encode.CODECS, "h265", encode.Codec("libnonexistent265", 20))
    code, err = run("colorize", media / "film.mp4", "--ref", media / "still.png", "-o", tmp_path / "out.mkv",
                    "--codec", "h265", "--backend", "propagate", *TINY)
    assert code == 2
    assert messages(err) == ["vsexcolor colorize: this PyAV build has no 'libnonexistent265' encoder"]
    assert listing(tmp_path) == set()


# --- demo ------------------------------------------------------------------------------------------

def test_demo_colorizes_the_bundled_clip_without_weights(run, tmp_path, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "no-weights"))
    code, err = run("demo", "-o", tmp_path / "demo", "--frames", 6, "--width", 64)
    assert code == 0, err
    notes = [line for line in messages(err) if "weight-free" in line]
    assert len(notes) == 1 and notes[0].startswith("vsexcolor demo: note: using the weight-free 'propagate' backend")
    demo = tmp_path / "demo"
    assert listing(demo) == {"gray.mkv", "reference.png", "colorized.mkv", "before-after.png"}
    gray, result = decoded(demo / "gray.mkv"), decoded(demo / "colorized.mkv")
    assert [f.format.name for f in gray] == ["gray"] * 6 and [f.format.name for f in result] == ["yuv420p"] * 6
    assert (gray[0].width, gray[0].height) == (64, 36)
    assert audio_payloads(demo / "colorized.mkv") == audio_payloads(demo / "gray.mkv") != []
    assert np.abs(result[5].to_ndarray()[36:].astype(int) - 128).mean() > 1  # chroma is not neutral
    picture = cv2.imread(str(demo / "before-after.png"))
    assert picture.shape[1] >= 3 * 64 and picture.shape[0] >= 2 * 36


# --- the README ----------------------------------------------------------------------------------------

#: README commands that other tests or CI run, and which.
RUN_ELSEWHERE = {
    "bash scripts/setup.sh": ".ci/run",
    ".venv/bin/python -m pytest": ".ci/run",
    "pip install .": "scripts/setup.sh, which installs the same package (editable, with the test extras)",
    "vsexcolor download": "tests/test_weights.py, from a file:// copy of the zip (this one needs the internet)",
    "vsexcolor download ddcolor": "tests/test_keyframe_weights.py, from a file:// copy (this one needs the internet)",
    "vsexcolor colorize reel1.mkv -o reel1.colorized.mkv": "test_without_a_reference_each_shot_is_coloured_from_its_"
    "automatic_keyframe below, on a small film with deterministic DDColor-T weights",
    "vspipe -c y4m examples/restore.vpy - | ffmpeg -i - -c:v libx264 -pix_fmt yuv420p out.mkv":
    "tests/test_vspipe.py",
    "vsexcolor train --config examples/train_finetune.toml": "tests/test_train.py",
    ".venv/bin/python benchmarks/speed.py --quick": "tests/test_vspipe.py, on a tiny clip (the figures take minutes)",
    "vsexcolor render examples/restore.vpy -a source=reel1.mkv -a ref=reel1-still.png --audio reel1.mkv --codec ffv1 "
    "-o reel1-restored.mkv": "tests/test_render.py, on a small film (against vspipe's frames)",
    "vsexcolor colorize vsexcolor-demo/gray.mkv --refs shots -o bunny-shots.mkv": "tests/test_shots.py, with "
    "frames coloured (here the exported frames are still gray)",
    "vsexcolor shots vsexcolor-demo/gray.mkv -o shots-colour --colorize": "tests/test_shots.py, with a "
    "deterministic DDColor-T (the released models need the internet)",
    "vsexcolor review shots": "tests/test_review.py, which serves a folder with it and ends it with Ctrl-C; "
    "tests/test_review_browser.py drives the page in headless Chromium (this one serves until Ctrl-C)",
    "vsexcolor shots examples/restore.vpy -a source=reel1.mkv -o reel1-shots": "tests/test_shots.py, on a small film, "
    "its frames coloured and taken back by restore.vpy",
    "vsexcolor render examples/restore.vpy -a source=reel1.mkv -a ref=reel1-shots -o reel1-restored.mkv":
    "tests/test_shots.py builds restore.vpy with the shots taken back; tests/test_render.py renders it",
    "ray get-auth-token --generate > /dev/null && chmod 600 ~/.ray/auth_token": "tests/cluster/test_cluster_auth.py, "
    "where a token exists already",
    "export RAY_AUTH_MODE=token": "tests/cluster/test_cluster_auth.py, for the `ray start` commands",
    "ray start --head --port 6379": "tests/cluster/test_cluster_auth.py, on one machine; tests/cluster/ also "
    "starts clusters of two nodes (Ray's own, and with `ray start`)",
    "ray start --address HEAD:6379": "tests/cluster/test_cluster_auth.py, the second node of a cluster with a token",
    "vsexcolor colorize /films/reel1.mkv --ref /films/reel1.png --codec ffv1 -o /films/reel1.colorized.mkv "
    "--ray HEAD:6379": "tests/cluster/, against that cluster",
}
#: Added to README commands run here, to keep them quick.
QUICK = {"demo": ["--frames", "6", "--width", "64"], "colorize": TINY,
         "eval": ["--frames", "3", "--methods", "gray,naive", "--quick"]}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def test_every_readme_command_is_run_by_a_test(run, tmp_path, monkeypatch, devc_weights):
    commands = readme_commands()
    assert set(RUN_ELSEWHERE) <= set(commands), "RUN_ELSEWHERE lists commands the README no longer shows"
    here = [c for c in commands if c not in RUN_ELSEWHERE]
    assert here and all(c.startswith("vsexcolor ") for c in here), here
    monkeypatch.chdir(tmp_path)
    for command in here:
        args = shlex.split(command)[1:]
        # `info` reports on weights; the rest run without them, like a new user's first go.
        models = devc_weights if args[0] == "info" else tmp_path / "no-weights"
        monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(models))
        code, err = run(*args, *QUICK.get(args[0], []))
        assert code == 0, f"{command}: {err}"


# --- automatic keyframes ----------------------------------------------------------------------

def test_without_a_reference_each_shot_is_coloured_from_its_automatic_keyframe(run, media, tmp_path, monkeypatch):
    import ddcnets

    out = tmp_path / "out.mkv"
    code, err = run("colorize", media / "film.mp4", "-o", out, "--backend", "propagate", *TINY)
    assert code == 2 and not out.exists() and not (tmp_path / "out.mkv.parts").exists()
    assert messages(err) == [
        f"vsexcolor colorize: no colour reference given and no DDColor keyframe model in "
        f"{os.environ['VSEXCOLOR_MODEL_DIR']}: it holds none of ddcolor_modelscope.pth, ddcolor_artistic.pth, "
        "ddcolor_paper.pth, ddcolor_paper_tiny.pth. Pass a reference (`--ref`/`--refs` on the command line, `ref=` "
        "in colorize) or run `vsexcolor download ddcolor`."]
    models = tmp_path / "models"
    models.mkdir()
    ddcnets.save_checkpoint(models / "ddcolor_paper_tiny.pth", "tiny", seed=3, wrapped=False)
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(models))
    code, err = run("colorize", media / "film.mp4", "-o", out, "--backend", "propagate", "--codec", "ffv1", *TINY)
    assert code == 0, err
    # Two shots of three frames; a keyframe not at its shot's first frame restarts it there.
    clip = open_clip(probe(media / "film.mp4", progress=False))
    filtered = vsexcolor.colorize(clip, None, backend="propagate", pixels=PIXELS)
    restarts = [n for n in range(clip.num_frames) if (p := filtered.get_frame(n).props)["VsexcolorSceneStart"] == n
                and p["VsexcolorShotStart"] != n]
    inside = f", with {len(restarts)} restart{'s' * (len(restarts) > 1)} at keyframes inside them" if restarts else ""
    assert f"in 2 shots{inside};" in messages(err)[-1], restarts
    # Each frame is the filter's, built here with that keyframe model ...
    from_model = vsexcolor.colorize(clip, None, backend="propagate", pixels=PIXELS,
                                    keyframe_model=models / "ddcolor_paper_tiny.pth")
    written = file_planes(out)
    for n in range(clip.num_frames):
        assert all(np.array_equal(a, b) for a, b in zip(written[n], planes(from_model, n), strict=True)), n
    # ... and each shot's keyframe is its frame coloured by that model: the file's frame has the
    # model's chroma (Lab a*b* within 5 on average, 4:2:0 and 8 bits; another model's is 15 off).
    from vsexcolor.filter.formats import colour_props
    from vsexcolor.filter.keyframes import KeyframeColorizer
    from vsexcolor.filter.luma import Luma
    from vsexcolor.filter.ref_inputs import reference_rgb
    from vsexcolor.filter.reference import image_lab

    colorizer = KeyframeColorizer(ddcnets.ddcolor_with_golden_weights("tiny", seed=3), torch.device("cpu"))
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    in_file = open_clip(probe(out, progress=False))
    keyframes = sorted({f.props["VsexcolorKeyframe"] for f in from_model.frames()})
    assert len(keyframes) == 2
    for n in keyframes:
        model = colorizer.rgb(luma.L(clip.get_frame(n))).astype(np.float32)
        written_ab = image_lab(reference_rgb(in_file[n], "frame"))[1:]
        assert float((written_ab - image_lab(model)[1:]).abs().mean()) < 5.0, n
