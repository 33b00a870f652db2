"""``vsexcolor render``: a VapourSynth script's output encoded as vspipe gives it, in parts
that are scenes where the output comes out of colorize, resumable; bad scripts are one line."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from clips import decode_rgb, sample_clip_path
from media import crash_encoder_at, write_image, write_video
from vsexcolor import commands
from vsexcolor.render import video, workfolder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VSPIPE = Path(sys.executable).with_name("vspipe")
W, H = 64, 48


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """Two shots, 6 and 5 frames, with a sound track."""
    frames = np.concatenate([decode_rgb(sample_clip_path("bikes"), 6, (W, H)),
                             decode_rgb(sample_clip_path("carphone_pristine"), 5, (W, H))])
    folder = tmp_path_factory.mktemp("film")
    write_image(folder / "still.png", frames[0])
    return write_video(folder / "film.mp4", frames)


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "chain.vpy"
    path.write_text("import vapoursynth as vs\nimport vsexcolor\nfrom vsexcolor import open_clip, probe\n"
                    "core = vs.core\n" + body)
    return path


def cli(capsys, *args: object) -> tuple[int, str]:
    capsys.readouterr()
    code = commands.main([str(a) for a in args])
    return code, capsys.readouterr().err


def parts_written(monkeypatch) -> list[tuple[int, int]]:
    written: list[tuple[int, int]] = []
    add = workfolder.WorkFolder.add
    monkeypatch.setattr(workfolder.WorkFolder, "add",
                        lambda self, first, last, data, restart=False:
                        written.append((first, last)) or add(self, first, last, data, restart))
    return written


def framemd5(source: list[str], stdin=None) -> list[str]:
    """The MD5 of every decoded frame, as ffmpeg's framemd5 muxer gives it."""
    done = subprocess.run(["ffmpeg", "-v", "error", *source, "-map", "0:v", "-f", "framemd5", "-"], stdin=stdin,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return [line.split(",")[-1].strip() for line in done.stdout.splitlines() if line and not line.startswith("#")]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg is installed by scripts/setup.sh")
def test_a_restoration_script_renders_to_exactly_the_frames_vspipe_gives(film, tmp_path, capsys):
    chain = ROOT / "examples" / "restore.vpy"
    args = {"source": str(film), "ref": str(film.with_name("still.png")), "backend": "propagate",
            "pixels": str(W * H)}
    out = tmp_path / "restored.mkv"
    code, err = cli(capsys, "render", chain, *(a for k, v in args.items() for a in ("-a", f"{k}={v}")),
                    "--audio", film, "--codec", "ffv1", "-o", out)
    assert code == 0, err
    assert "with backend propagate in 2 shots; colorized 11 frames" in err.splitlines()[-1]
    pipe = subprocess.Popen([str(VSPIPE), "-c", "y4m", *(a for k, v in args.items() for a in ("-a", f"{k}={v}")),
                             str(chain), "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    expected = framemd5(["-i", "-"], stdin=pipe.stdout)
    assert pipe.wait(timeout=600) == 0, pipe.stderr.read().decode(errors="replace")
    assert framemd5(["-i", str(out)]) == expected and len(expected) == 11
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1


def test_colorized_output_is_cut_into_its_scenes_and_anything_else_into_chunks(film, tmp_path, capsys, monkeypatch):
    written = parts_written(monkeypatch)
    colorized = script(tmp_path, f"vsexcolor.colorize(open_clip(probe({str(film)!r}, progress=False)), "
                                 f"{str(film.with_name('still.png'))!r}, backend='propagate', pixels={W * H})"
                                 ".set_output()\n")
    assert cli(capsys, "render", colorized, "-o", tmp_path / "scenes.mkv", "--chunk", "4")[0] == 0
    assert written == [(0, 5), (6, 10)]
    written.clear()
    plain = script(tmp_path, f"open_clip(probe({str(film)!r}, progress=False)).set_output()\n")
    code, err = cli(capsys, "render", plain, "-o", tmp_path / "chunks.mkv", "--codec", "ffv1", "--chunk", "4")
    assert code == 0, err
    assert written == [(0, 3), (4, 7), (8, 10)]
    assert "with backend none in 3 part(s); rendered 11 frames" in err.splitlines()[-1]
    source = video.open_clip(video.probe(film, progress=False))
    with av.open(str(tmp_path / "chunks.mkv")) as container:
        for n, frame in enumerate(container.decode(video=0)):
            assert np.array_equal(frame.to_ndarray()[:H], np.asarray(source.get_frame(n)[0])), n


def test_an_interrupted_render_resumes_to_the_same_file(film, tmp_path, capsys, monkeypatch):
    chain = script(tmp_path, f"open_clip(probe({str(film)!r}, progress=False)).set_output()\n")
    command = ["render", chain, "--chunk", "4", "--audio", film]
    assert cli(capsys, *command, "-o", tmp_path / "whole.mkv")[0] == 0
    crash_encoder_at(monkeypatch, 9)
    out = tmp_path / "out.mkv"
    code, err = cli(capsys, *command, "-o", out)
    assert code == 2 and "failed at frame 9: injected failure" in err
    monkeypatch.undo()
    written = parts_written(monkeypatch)
    code, err = cli(capsys, *command, "-o", out, "--resume")
    assert code == 0, err
    assert written == [(8, 10)]
    assert out.read_bytes() == (tmp_path / "whole.mkv").read_bytes()


@pytest.mark.parametrize("body,args,message", [
    ("x = 1\n", [], "sets no video output 0 (end it with clip.set_output())"),
    ("raise ValueError('no such reel')\n", [], "failed: ValueError: no such reel"),
    ("core.std.BlankClip(fpsnum=0, length=3).set_output()\n", [], "has no constant frame rate; set one with "
                                                                 "std.AssumeFPS"),
    ("core.std.BlankClip(length=3).set_output()\n", ["--audio", "{script}"], "for its audio: Invalid data"),
    ("core.std.BlankClip(length=3).set_output()\n", ["-a", "1x=2"], None),
    ("core.std.BlankClip(length=3).set_output()\n", ["--end", "5"], "--start and --end must satisfy"),
])
def test_bad_scripts_and_options_are_one_line(tmp_path, capsys, body, args, message):
    chain = script(tmp_path, body)
    args = [a.format(script=chain) for a in args]
    if message is None:  # argparse refuses it, with usage
        with pytest.raises(SystemExit):
            commands.main(["render", str(chain), *args])
        assert "expected KEY=VALUE" in capsys.readouterr().err
        return
    code, err = cli(capsys, "render", chain, *args, "-o", tmp_path / "out.mkv")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("vsexcolor render: ") and message in err, err
    assert not (tmp_path / "out.mkv").exists() and not (tmp_path / "out.mkv.parts").exists()


def test_a_resume_names_each_file_the_script_reads_that_changed(film, tmp_path, capsys, monkeypatch):
    source, other = tmp_path / "source.mp4", tmp_path / "other.mp4"  # one named by -a, one in the script
    source.write_bytes(film.read_bytes())
    other.write_bytes(film.read_bytes())
    chain = script(tmp_path, f"a = open_clip(probe(source, progress=False))\n"
                             f"b = open_clip(probe({str(other)!r}, progress=False))\n"
                             "core.std.Merge(a, b).set_output()\n")
    out = tmp_path / "out.mkv"
    command = ["render", chain, "-a", f"source={source}", "--chunk", "4", "--codec", "ffv1", "-o", out]
    crash_encoder_at(monkeypatch, 9)
    assert cli(capsys, *command)[0] == 2
    monkeypatch.undo()
    changed = np.concatenate([decode_rgb(sample_clip_path("bigbuckbunny"), 11, (W, H))])
    for path in (source, other):
        kept = path.read_bytes()
        write_video(path, changed)  # as many frames, other pictures
        code, err = cli(capsys, *command, "--resume")
        assert code == 2 and f"(reads {path} was '{len(kept)} bytes, sha256 " in err.splitlines()[-1], err
        assert not out.exists() and (tmp_path / "out.mkv.parts" / "frames-00000000-00000003.mp4").exists()
        path.write_bytes(kept)
    code, err = cli(capsys, *command, "--resume")
    assert code == 0, err


def test_a_resume_takes_a_shots_folder_s_references_alone(film, tmp_path, capsys, monkeypatch):
    import cv2

    refs = tmp_path / "shots"  # as `vsexcolor shots` writes it, then coloured
    (refs / "gray").mkdir(parents=True)
    still = cv2.imread(str(film.with_name("still.png")))
    for name in ("000000.png", "contact-sheet.png", "gray/000000.png"):
        cv2.imwrite(str(refs / name), still)
    (refs / "shots.json").write_text("{}")
    command = crashed_render_of_a_folder(tmp_path, film, refs, capsys, monkeypatch)
    for name in ("contact-sheet.png", "gray/000000.png", "shots.json"):  # `vsexcolor shots` run again
        (refs / name).write_bytes((refs / name).read_bytes() + b" ")
    kept = (refs / "000000.png").read_bytes()
    cv2.imwrite(str(refs / "000000.png"), still[::-1])
    code, err = cli(capsys, *command, "--resume")
    assert code == 2 and f"(reads {refs / '000000.png'} was '{len(kept)} bytes, sha256 " in err.splitlines()[-1], err
    (refs / "000000.png").write_bytes(kept)
    code, err = cli(capsys, *command, "--resume")
    assert code == 0, err


def crashed_render_of_a_folder(tmp_path, film, refs, capsys, monkeypatch) -> list:
    """``render`` of a script colouring ``film`` from the folder ``refs``, crashed at frame 8
    (a resume has a part to keep); the command, to run again."""
    chain = script(tmp_path, "from pathlib import Path\n"
                             "c = open_clip(probe(source, progress=False))\n"
                             "vsexcolor.colorize(c, Path(refs), backend='propagate', pixels=64 * 48).set_output()\n")
    command = ["render", chain, "-a", f"source={film}", "-a", f"refs={refs}", "--codec", "ffv1",
               "-o", tmp_path / "out.mkv"]
    crash_encoder_at(monkeypatch, 8)
    assert cli(capsys, *command)[0] == 2
    monkeypatch.undo()
    return command


def test_a_resume_and_the_nodes_pass_over_what_a_file_manager_writes_into_a_folder(film, tmp_path, capsys,
                                                                                   monkeypatch):
    import cv2

    from vsexcolor.render.environment import environment

    refs = tmp_path / "refs"  # a folder of references made by hand, without shots.json
    refs.mkdir()
    cv2.imwrite(str(refs / "000000.png"), cv2.imread(str(film.with_name("still.png"))))
    command = crashed_render_of_a_folder(tmp_path, film, refs, capsys, monkeypatch)
    before = environment("ffv1", [refs])
    (refs / ".DS_Store").write_bytes(b"Bud1")  # the folder opened in Finder
    (refs / "._000000.png").write_bytes(b"AppleDouble")  # and copied over SMB
    (refs / "Thumbs.db").write_bytes(b"thumbs")  # and opened in Explorer
    assert environment("ffv1", [refs]) == before
    code, err = cli(capsys, *command, "--resume")
    assert code == 0, err


def test_a_resume_with_other_library_versions_is_refused_naming_them(film, tmp_path, capsys, monkeypatch):
    from vsexcolor.render import environment

    chain = script(tmp_path, f"open_clip(probe({str(film)!r}, progress=False)).set_output()\n")
    out = tmp_path / "out.mkv"
    command = ["render", chain, "--chunk", "4", "-o", out]
    crash_encoder_at(monkeypatch, 9)
    assert cli(capsys, *command)[0] == 2
    monkeypatch.undo()
    versions = environment._versions()
    monkeypatch.setattr(environment, "_versions", lambda: tuple((k, "0.0" if k == "OpenCV" else v) for k, v in versions))
    code, err = cli(capsys, *command, "--resume")
    assert code == 2
    assert err.splitlines()[-1] == (
        f"vsexcolor render: environment: OpenCV '0.0' differs from the {dict(versions)['OpenCV']!r} the rest of "
        f"{out}.parts was made with; the parts would not match: add --overwrite to start over, or render where it "
        "is the same")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_files_a_run_writes_are_as_the_umask_leaves_them(film, tmp_path, capsys, monkeypatch, umask):
    out, parts = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"
    command = ["colorize", film, "--ref", film.with_name("still.png"), "-o", out, "--backend", "propagate",
               "--size", W * H, "--codec", "ffv1"]

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    old = os.umask(umask)
    try:
        crash_encoder_at(monkeypatch, 8)  # in the second shot: the first one's part is kept
        assert cli(capsys, *command)[0] == 2
        monkeypatch.undo()
        kept = sorted(p.name for p in parts.iterdir())
        assert kept == ["frames-00000000-00000005.mp4", "manifest.json"], kept
        assert {name: mode(parts / name) for name in kept} == dict.fromkeys(kept, 0o666 & ~umask)
        assert mode(parts) == 0o777 & ~umask
        code, err = cli(capsys, *command, "--resume")
        assert code == 0, err
        assert mode(out) == 0o666 & ~umask
    finally:
        os.umask(old)
