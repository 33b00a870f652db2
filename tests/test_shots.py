"""The per-shot workflow: `vsexcolor shots` finds the shots colorize finds and exports a
frame of each, the very frame colorize would colour as its automatic keyframe (with
--colorize, coloured as colorize colours it); `vsexcolor colorize --refs DIR` takes the
coloured ones back, saying which shots have none and which look misnumbered."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import vapoursynth as vs

import ddcnets
import vsexcolor
from clips import decode_rgb, sample_clip_path, yuv_clip
from media import write_video
from vsexcolor import commands
from vsexcolor.filter import shots
from vsexcolor.filter import PROP_KEYFRAME, PROP_NEXT_KEYFRAME, PROP_SCENE_START, PROP_SHOT_START
from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.keyframes import KeyframeColorizer
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.ref_inputs import KEYFRAME_DB
from vsexcolor.filter.reference import image_lab
from vsexcolor.filter.scenes import DEFAULT_THRESHOLD
from vsexcolor import open_clip, probe

pytestmark = pytest.mark.slow

core = vs.core

W, H = 96, 64


@pytest.fixture(scope="module")
def colour_frames() -> np.ndarray:
    """Three shots of 14, 9 and 12 frames, the first 3 frames of the second one blurred as a
    fade-in would be."""
    shots = [decode_rgb(sample_clip_path("bikes"), 14, (W, H)),
             decode_rgb(sample_clip_path("carphone_pristine"), 9, (W, H)),
             decode_rgb(sample_clip_path("bigbuckbunny"), 12, (W, H))]
    shots[1][:3] = [cv2.GaussianBlur(f, (9, 9), 4) for f in shots[1][:3]]
    return np.concatenate(shots)


@pytest.fixture(scope="module")
def film(tmp_path_factory, colour_frames) -> Path:
    """The black-and-white film: the colour frames' luma, as an 8-bit gray video."""
    gray = np.stack([np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[..., :1], 3, -1) for f in colour_frames])
    return write_video(tmp_path_factory.mktemp("film") / "film.mkv", gray, pix_fmt="gray", codec="ffv1")


def cli(capsys, *args: object) -> tuple[int, str]:
    capsys.readouterr()
    code = commands.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_shots_are_those_colorize_finds_with_a_frame_of_each_to_colour(film, tmp_path, capsys):
    out = tmp_path / "shots"
    code, err = cli(capsys, "shots", film, "-o", out)
    assert code == 0, err
    assert err.strip().splitlines()[-1] == (f"vsexcolor shots: 3 shots, 0.5 s (12 frames) long on average; wrote 3 "
                                            f"frames to colour, shots.json, shots.csv and contact-sheet.png to {out}")
    report = json.loads((out / "shots.json").read_text())
    spans = [(s["first"], s["last"]) for s in report["shots"]]
    assert spans == [(0, 13), (14, 22), (23, 34)]
    # The very cuts of colorize at the same threshold.
    colorized = vsexcolor.colorize(open_clip(probe(film, progress=False)), np.zeros((8, 8, 3), np.uint8),
                                   backend="propagate", pixels=W * H)
    starts = sorted({f.props[PROP_SCENE_START] for f in colorized.frames()})
    assert starts == [a for a, _ in spans]
    # The sharpest frame of the second shot's first second is past its blurred fade-in.
    picks = [s["frame"] for s in report["shots"]]
    assert picks[1] >= 17
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{p:06d}.png" for p in picks] + ["contact-sheet.png", "shots.csv", "shots.json"])
    png = cv2.imread(str(out / f"{picks[0]:06d}.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (H, W) and png.dtype == np.uint8  # gray, full size
    with open(out / "shots.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["start"] for r in rows] == ["00:00:00.000", "00:00:00.560", "00:00:00.920"]
    assert rows[1]["duration_s"] == "0.36"
    sheet = cv2.imread(str(out / "contact-sheet.png"))
    assert sheet.shape[1] >= 3 * 200
    code, err = cli(capsys, "shots", film, "-o", out, "--pick", "first")
    assert code == 2 and "add --overwrite to replace them" in err
    assert cli(capsys, "shots", film, "-o", out, "--pick", "middle", "--overwrite")[0] == 0
    assert [s["frame"] for s in json.loads((out / "shots.json").read_text())["shots"]] == [6, 18, 28]


def test_a_long_shot_gets_a_keyframe_where_the_picture_has_moved_on_and_a_render_carries_colour_between_them(
        film, colour_frames, tmp_path, capsys):
    out = tmp_path / "shots"
    # 25 fps: keyframes 5 to 8 frames apart, each 8 frames of a shot starting with one, so that
    # the 14- and 12-frame shots are long ones.
    code, err = cli(capsys, "shots", film, "-o", out, "--min-gap", "0.2", "--max-gap", "0.32")
    assert code == 0, err
    report = json.loads((out / "shots.json").read_text())
    assert report["keyframe_gaps_s"] == [0.2, 0.32]
    keyframes = [s["keyframes"] for s in report["shots"]]
    for shot, keys in zip(report["shots"], keyframes):
        assert keys[0] == shot["frame"] and keys == sorted(keys) and shot["first"] <= keys[0] <= keys[-1] <= shot["last"]
        assert all(5 <= b - a <= 8 for a, b in zip(keys, keys[1:]))
    assert len(keyframes[0]) >= 2 and keyframes[0][-1] == 13  # the first shot's last frame: its end is coloured both ways
    names = [f"{k:06d}.png" for keys in keyframes for k in keys]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["contact-sheet.png", "shots.csv", "shots.json"])
    assert "wrote {} frames to colour".format(len(names)) in err
    with open(out / "shots.csv") as f:
        assert [r["keyframes"] for r in csv.DictReader(f)] == [" ".join(map(str, keys)) for keys in keyframes]
    # Coloured as an editor's "color" blend does (the gray value kept), each is its frame's keyframe.
    for keys in keyframes:
        for k in keys:
            ycc = cv2.cvtColor(colour_frames[k], cv2.COLOR_RGB2YCrCb)
            ycc[..., 0] = cv2.imread(str(out / f"{k:06d}.png"), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(out / f"{k:06d}.png"), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
    rendered = vsexcolor.colorize(open_clip(probe(film, progress=False)), out, backend="propagate", pixels=W * H)
    used = [(f.props[PROP_KEYFRAME], f.props[PROP_NEXT_KEYFRAME]) for f in rendered.frames()]
    for keys in keyframes:
        for a, b in zip(keys, keys[1:]):
            assert used[a:b] == [(a, b)] * (b - a)  # forward from the one before, backward from the one after
        assert used[keys[-1]][0] == keys[-1]


def test_the_contact_sheet_keeps_a_shot_s_keyframes_together_in_one_row():
    thumb = np.zeros((10, 16, 3), np.uint8)
    found = [shots.Shot(1, 0, 99, (3, 40, 80)), shots.Shot(2, 100, 110, (100,)), shots.Shot(3, 111, 120, (111,)),
             shots.Shot(4, 121, 130, (121,))]
    images = [[[thumb, thumb + 255] for _ in s.keyframes] for s in found]  # gray and colour, white
    sheet = shots.contact_sheet(found, images, str, columns=4)
    # Shot 1 (6 thumbnails) is too wide for 4 a row: a row of its own; shots 2 and 3 fill the
    # next one, and shot 4 starts a third.
    assert sheet.shape[:2] == (3 * (10 + 22), 6 * 16)
    colour_columns = [x for x in range(0, sheet.shape[1], 16) if sheet[5, x + 8].min() == 255]
    assert colour_columns == [16, 48, 80]  # each keyframe gray then colour
    assert sheet[32 + 5, 4 * 16 + 8].min() == 255  # the second row ends after shots 2 and 3: white paper


def test_colorize_takes_a_folder_of_coloured_frames_back(film, colour_frames, tmp_path, capsys):
    out = tmp_path / "shots"
    assert cli(capsys, "shots", film, "-o", out, "--pick", "first")[0] == 0
    # Frame 0 coloured as an editor's "color" blend does (its gray value kept): a keyframe.
    gray = cv2.imread(str(out / "000000.png"), cv2.IMREAD_UNCHANGED)
    ycc = cv2.cvtColor(colour_frames[0], cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = gray
    cv2.imwrite(str(out / "000000.png"), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
    # A picture of the third shot, numbered as the second's: misnumbered.
    cv2.imwrite(str(out / "000014.png"), cv2.cvtColor(colour_frames[30], cv2.COLOR_RGB2BGR))
    code, err = cli(capsys, "colorize", film, "--refs", out, "-o", tmp_path / "out.mkv", "--backend", "propagate",
                    "--size", str(W * H))
    assert code == 0, err
    assert ("note: 1 of 3 shots have no reference of their own (and no keyframe model to colour them: `vsexcolor "
            "download ddcolor`): 1 take the reference before them (23-34 (00:00:00.920))") in err
    assert ("note: 000014.png looks like neither frame 14 nor its shot; it looks most like the shot from frame 23 "
            "(00:00:00.920): is it misnumbered?") in err
    assert "000000.png: frame 0, keyframe (lightness" in err
    assert "000014.png: frame 14, exemplar (lightness" in err
    assert "not coloured, left out: 000023.png" in err
    code, err = cli(capsys, "colorize", film, "--refs", out, "--ref", out / "000000.png", "-o", tmp_path / "x.mkv")
    assert code == 2 and "give either --refs DIR or --ref/--ref-at, not both" in err


def test_a_frame_exported_with_the_default_pick_and_coloured_serves_its_whole_shot(film, colour_frames, tmp_path,
                                                                                     capsys):
    out = tmp_path / "shots"
    assert cli(capsys, "shots", film, "-o", out)[0] == 0
    picks = [s["frame"] for s in json.loads((out / "shots.json").read_text())["shots"]]
    assert picks[1] > 14  # the second shot opens blurred: its pick is not its first frame
    for pick in picks:  # coloured as an editor's "color" blend does (the gray value kept)
        gray = cv2.imread(str(out / f"{pick:06d}.png"), cv2.IMREAD_UNCHANGED)
        ycc = cv2.cvtColor(colour_frames[pick], cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = gray
        cv2.imwrite(str(out / f"{pick:06d}.png"), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
    colorized = vsexcolor.colorize(open_clip(probe(film, progress=False)), out, backend="propagate", pixels=W * H)
    frames = list(colorized.frames())
    # Each shot's frames, those before its keyframe included, start from its own keyframe.
    assert [f.props[PROP_KEYFRAME] for f in frames] == [picks[0]] * 14 + [picks[1]] * 9 + [picks[2]] * 12
    assert [f.props[PROP_SHOT_START] for f in frames] == [0] * 14 + [14] * 9 + [23] * 12
    code, err = cli(capsys, "colorize", film, "--refs", out, "-o", tmp_path / "out.mkv", "--backend", "propagate",
                    "--size", str(W * H))
    assert code == 0 and "have no reference of their own" not in err, err


#: A restorer's chain: the telecine's black borders cropped, the frames denoised (a blur
#: stands in), colorized from the references in REFS, which need not exist yet.
SCRIPT = """
from pathlib import Path
import vapoursynth as vs
import vsexcolor
from vsexcolor import open_clip, probe
clip = open_clip(probe({film!r}, progress=False))
cropped = vs.core.std.Crop(clip, left=8, right=8)
denoised = vs.core.std.BoxBlur(cropped, hradius=1, vradius=1)
vsexcolor.colorize(denoised, Path(refs), backend="propagate", pixels={pixels}, scene_clip=cropped).set_output()
"""


def test_the_shots_of_a_script_are_those_of_the_clip_its_colorize_call_colours(film, colour_frames, tmp_path,
                                                                                capsys):
    from vsexcolor.commands.render import ScriptRecipe

    script = tmp_path / "restore.vpy"
    script.write_text(SCRIPT.format(film=str(film), pixels=(W - 16) * H))
    out = tmp_path / "shots"
    code, err = cli(capsys, "shots", script, "-a", f"refs={out}", "-o", out)
    assert code == 0, err
    report = json.loads((out / "shots.json").read_text())
    assert [(s["first"], s["last"]) for s in report["shots"]] == [(0, 13), (14, 22), (23, 34)]
    assert report["input"] == str(script) and report["arguments"] == {"refs": str(out)}
    picks = [s["frame"] for s in report["shots"]]
    clip = open_clip(probe(film, progress=False))
    denoised = shots.gray(core.std.BoxBlur(core.std.Crop(clip, left=8, right=8), hradius=1, vradius=1))
    for pick in picks:  # the frames colorize colours, cropped and denoised
        gray = cv2.imread(str(out / f"{pick:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(gray, np.asarray(denoised.get_frame(pick)[0]))
        ycc = cv2.cvtColor(np.ascontiguousarray(colour_frames[pick][:, 8:-8]), cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = gray  # coloured as an editor's "color" blend does
        cv2.imwrite(str(out / f"{pick:06d}.png"), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
    # The script's render takes them back, each the keyframe of its shot.
    colorized = ScriptRecipe(script, (("refs", str(out)),)).build()
    frames = list(colorized.frames())
    assert [f.props[PROP_KEYFRAME] for f in frames] == [picks[0]] * 14 + [picks[1]] * 9 + [picks[2]] * 12


def test_restore_vpy_s_shots_are_exported_and_taken_back_as_the_readme_shows(film, colour_frames, tmp_path, capsys):
    from vsexcolor.commands.render import ScriptRecipe

    restore = Path(__file__).resolve().parents[1] / "examples" / "restore.vpy"
    out = tmp_path / "reel1-shots"
    code, err = cli(capsys, "shots", restore, "-a", f"source={film}", "-o", out)
    assert code == 0, err
    picks = [s["frame"] for s in json.loads((out / "shots.json").read_text())["shots"]]
    assert len(picks) == 3
    for pick in picks:  # deinterlaced and denoised: coloured as an editor's "color" blend does
        gray = cv2.imread(str(out / f"{pick:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert gray.dtype == np.uint16  # the denoised clip is 16-bit
        ycc = cv2.cvtColor(colour_frames[pick].astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = gray / 65535
        rgb = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB).clip(0, 1)
        cv2.imwrite(str(out / f"{pick:06d}.png"), cv2.cvtColor(np.round(rgb * 65535).astype(np.uint16),
                                                                   cv2.COLOR_RGB2BGR))
    recipe = ScriptRecipe(restore, (("backend", "propagate"), ("ref", str(out)), ("source", str(film))))
    frames = list(recipe.build().frames())
    assert [f.props[PROP_KEYFRAME] for f in frames] == [picks[0]] * 14 + [picks[1]] * 9 + [picks[2]] * 12


@pytest.mark.parametrize("body, args, message", [
    ("c = open_clip(probe(FILM, progress=False))\nvsexcolor.colorize(c, 'a.png')\nvsexcolor.colorize(c, 'b.png')"
     "\nc.set_output()", [], "{script} calls vsexcolor.colorize 2 times, and shots finds the shots of one clip: "
     "export them from a script that calls it once"),
    ("vsexcolor.colorize(open_clip(probe(FILM, progress=False)), 'a.png', scene_threshold=0.2).set_output()",
     ["--scene-threshold", "0.3"], "--scene-threshold 0.3 differs from the 0.2 of {script}'s colorize call: leave "
     "it out, so that the shots are its"),
    ("vsexcolor.colorize(open_clip(probe(FILM, progress=False)), 'a.png', keyframe_pick='first').set_output()",
     ["--pick", "sharpest"], "--pick sharpest differs from the keyframe_pick 'first' of {script}'s colorize call: "
     "leave it out, so that the frames are those it colours"),
    ("raise ValueError('no source given')", [], "{script} failed: ValueError: no source given"),
])
def test_a_script_whose_shots_cannot_be_found_is_one_line(film, tmp_path, capsys, body, args, message):
    script = tmp_path / "film.vpy"
    script.write_text("import vsexcolor\nfrom vsexcolor import open_clip, probe\n"
                      + body.replace("FILM", repr(str(film))))
    code, err = cli(capsys, "shots", script, "-o", tmp_path / "shots", *args)
    assert code == 2
    assert err.strip().splitlines() == [f"vsexcolor shots: {message.format(script=script)}"]
    assert not (tmp_path / "shots").exists()


@pytest.mark.parametrize("call, shots_and_picks", [
    ("keyframe_pick='first'", [(0, 13, 0), (14, 22, 14), (23, 34, 23)]),
    ("scenes=False", [(0, 34, 20)]),  # one shot: the sharpest of its first second, across what are cuts
])
def test_a_script_s_shots_are_found_and_picked_as_its_colorize_call_does(film, tmp_path, capsys, call,
                                                                         shots_and_picks):
    script = tmp_path / "film.vpy"
    script.write_text("import vsexcolor\nfrom vsexcolor import open_clip, probe\n"
                      f"vsexcolor.colorize(open_clip(probe({str(film)!r}, progress=False)), 'a.png', {call})"
                      ".set_output()\n")
    code, err = cli(capsys, "shots", script, "-o", tmp_path / "shots")
    assert code == 0, err
    report = json.loads((tmp_path / "shots" / "shots.json").read_text())
    assert [(s["first"], s["last"], s["frame"]) for s in report["shots"]] == shots_and_picks


def test_a_folder_that_cannot_be_written_into_is_one_line(film, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file")
    for out, message in ((tmp_path / "notes.txt" / "shots", f"the output folder {str(tmp_path / 'notes.txt')!r} is "
                                                            "a file, not a folder"),
                         (Path("/proc/shots"), "cannot write into '/proc' (No such file or directory): choose "
                                               "another folder")):
        code, err = cli(capsys, "shots", film, "-o", out)
        assert code == 2 and err.strip().splitlines() == [f"vsexcolor shots: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_script_without_colorize_has_the_shots_of_its_output_and_a_file_takes_no_a(film, tmp_path, capsys):
    script = tmp_path / "gray.vpy"
    script.write_text(f"from vsexcolor import open_clip, probe\nopen_clip(probe({str(film)!r}, "
                      "progress=False))[14:].set_output()")
    code, err = cli(capsys, "shots", script, "-o", tmp_path / "shots")
    assert code == 0, err
    report = json.loads((tmp_path / "shots" / "shots.json").read_text())
    assert [(s["first"], s["last"]) for s in report["shots"]] == [(0, 8), (9, 20)]
    code, err = cli(capsys, "shots", film, "-a", "refs=x", "-o", tmp_path / "more")
    assert code == 2 and err.strip() == f"vsexcolor shots: -a sets a variable of a .vpy script, and {film} is not one"


@pytest.mark.parametrize("how", ["sharpest", "first"])
def test_the_frame_picked_is_the_keyframe_colorize_colours(film, colour_frames, how):
    clip = open_clip(probe(film, progress=False))
    found = shots.find(clip, DEFAULT_THRESHOLD, pick=how)
    # A clip of keyframes (the colour film) stands in for the keyframe model: the same pick.
    out = vsexcolor.colorize(clip, keyframe_clip=yuv_clip(colour_frames), backend="propagate", pixels=W * H,
                             keyframe_pick=how)
    keyframes = {f.props[PROP_SHOT_START]: f.props[PROP_KEYFRAME] for f in out.frames()}
    assert {shot.first: shot.pick for shot in found} == keyframes
    assert [shot.pick for shot in found] == ([7, 20, 34] if how == "sharpest" else [0, 14, 23])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A folder holding a DDColor-T checkpoint with deterministic weights, as the released
    ``ddcolor_paper_tiny.pth``."""
    folder = tmp_path_factory.mktemp("models")
    ddcnets.save_checkpoint(folder / "ddcolor_paper_tiny.pth", "tiny", seed=7, wrapped=True)
    return folder


def psnr_L(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two L (0..100)."""
    return 10 * float(np.log10(100.0 ** 2 / float(((a - b) ** 2).mean())))


def test_colorize_writes_the_keyframes_colorize_makes_and_colorize_takes_them_back(film, tiny_model, tmp_path,
                                                                                   capsys, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tiny_model))
    out = tmp_path / "shots"
    code, err = cli(capsys, "shots", film, "-o", out, "--colorize", "--device", "cpu")
    assert code == 0, err
    assert err.strip().splitlines()[-1].endswith(
        "wrote 3 frames coloured by ddcolor_paper_tiny.pth (the gray ones in gray/), shots.json, shots.csv and "
        f"contact-sheet.png to {out}")
    picks = [s["frame"] for s in json.loads((out / "shots.json").read_text())["shots"]]
    names = [f"{p:06d}.png" for p in picks]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["contact-sheet.png", "gray", "shots.csv",
                                                                    "shots.json"])
    assert sorted(p.name for p in (out / "gray").iterdir()) == sorted(names)
    clip = open_clip(probe(film, progress=False))
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    colorizer = KeyframeColorizer(ddcnets.ddcolor_with_golden_weights("tiny", seed=7), torch.device("cpu"))
    gray = shots.gray(clip)
    for pick, name in zip(picks, names):
        png = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert png.shape == (H, W, 3) and png.dtype == np.uint8
        # The keyframe colorize colours the shot from, in 8 bits: the frame's L*, the model's a*b*.
        L = luma.L(clip.get_frame(pick))
        keyframe = colorizer.rgb(L)
        rgb = png[..., ::-1] / 255.0
        assert np.abs(rgb - keyframe).max() <= 0.5 / 255 + 1e-6
        assert psnr_L(image_lab(rgb.astype(np.float32))[None, :1], L) > KEYFRAME_DB + 7
        assert image_lab(rgb.astype(np.float32))[1:].abs().mean() > 1.0  # coloured
        # The gray frame beside it, as an export without --colorize writes it.
        np.testing.assert_array_equal(cv2.imread(str(out / "gray" / name), cv2.IMREAD_UNCHANGED),
                                      np.asarray(gray.get_frame(pick)[0]))
    # The contact sheet: each shot's gray and coloured frames side by side.
    sheet = cv2.imread(str(out / "contact-sheet.png")).astype(int)
    width, height = shots.THUMB_WIDTH, round(shots.THUMB_WIDTH * H / W)
    assert sheet.shape[1] == 3 * 2 * width
    gray_thumb, colour_thumb = sheet[:height, :width], sheet[:height, width:2 * width]
    assert np.ptp(gray_thumb, axis=2).max() == 0 and np.ptp(colour_thumb, axis=2).max() > 10
    # colorize takes them back as keyframes, the gray folder beside them skipped.
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "none"))
    code, err = cli(capsys, "colorize", film, "--refs", out, "-o", tmp_path / "out.mkv", "--backend", "propagate",
                    "--size", str(W * H))
    assert code == 0, err
    for pick, name in zip(picks, names):
        assert f"{name}: frame {pick}, keyframe (lightness" in err
    assert "no reference of their own" not in err


def test_an_export_over_an_earlier_one_leaves_its_own_frames_alone_and_refuses_pictures_no_export_listed(
        film, tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tiny_model))
    out = tmp_path / "shots"
    assert cli(capsys, "shots", film, "-o", out, "--pick", "first", "--colorize", "--device", "cpu")[0] == 0
    code, err = cli(capsys, "shots", film, "-o", out, "--overwrite")  # the sharpest frames: others, gray
    assert code == 0, err
    names = [f"{s['frame']:06d}.png" for s in json.loads((out / "shots.json").read_text())["shots"]]
    assert names == ["000007.png", "000020.png", "000034.png"]
    # What colorize --refs reads is what shots.json lists: no keyframe of the first export is left.
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["contact-sheet.png", "shots.csv", "shots.json"])
    # A picture no export wrote is refused, whether or not it would be replaced, and nothing is touched.
    cv2.imwrite(str(out / "000030.png"), colour_frames_like(out / names[0]))
    cv2.imwrite(str(out / "ref_14.png"), colour_frames_like(out / names[0]))
    before = {p: p.read_bytes() for p in out.iterdir()}
    for overwrite in ([], ["--overwrite"]):
        code, err = cli(capsys, "shots", film, "-o", out, "--pick", "first", *overwrite)
        assert code == 2 and err.strip().splitlines()[-1] == (
            f"vsexcolor shots: {out} holds 000030.png and ref_14.png, which no export listed in its shots.json and "
            f"colorize --refs {out} would take as references too: move them out, or choose another folder")
        assert {p: p.read_bytes() for p in out.iterdir()} == before


def colour_frames_like(path: Path) -> np.ndarray:
    """A colour picture of the size of the image at ``path``: BGR uint8."""
    image = cv2.imread(str(path))
    return image[::-1].copy()


def test_colorize_without_a_keyframe_model_writes_nothing_and_names_both_ways_out(film, tmp_path, capsys,
                                                                                  empty_model_folder):
    out = tmp_path / "shots"
    code, err = cli(capsys, "shots", film, "-o", out, "--colorize")
    assert code == 2
    assert err.strip().splitlines() == [
        f"vsexcolor shots: --colorize needs a DDColor keyframe model and there is none in the model folder "
        f"{empty_model_folder}: run `vsexcolor download ddcolor`, or leave out --colorize and colour the gray frames "
        f"by hand"]
    assert not out.exists()
    out.mkdir()
    code, err = cli(capsys, "shots", film, "-o", out, "--colorize", "--keyframe-model", "ddcolor_artistic")
    assert code == 2 and "`vsexcolor download ddcolor --model ddcolor_artistic`" in err
    code, err = cli(capsys, "shots", film, "-o", out, "--colorize", "--keyframe-model", tmp_path / "x.pth")
    assert code == 2 and f"there is none at {tmp_path / 'x.pth'}:" in err
    assert list(out.iterdir()) == []
    code, err = cli(capsys, "shots", film, "-o", out, "--device", "cpu")
    assert code == 2 and "--keyframe-model and --device are for colouring the frames: add --colorize" in err


def test_a_colour_frame_of_a_clip_above_8_bits_is_written_in_16_bits():
    rgb = np.array([[[1.0, 0.5, 0.0]]], np.float32)
    assert shots.png_image(rgb, 8).tolist() == [[[0, 128, 255]]]  # BGR, as cv2 writes
    deep = shots.png_image(rgb, 16)
    assert deep.dtype == np.uint16 and deep.tolist() == [[[0, 32768, 65535]]]
