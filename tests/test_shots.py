"""The per-shot workflow: `vsexcolor shots` finds the shots colorize finds and exports a
frame of each; `vsexcolor colorize --refs DIR` takes the coloured ones back, saying which
shots have none and which look misnumbered."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import vsexcolor
from clips import decode_rgb, sample_clip_path
from media import write_video
from vsexcolor import commands
from vsexcolor.filter import PROP_SCENE_START
from vsexcolor.video import open_clip, probe

pytestmark = pytest.mark.slow

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
    assert ("note: 1 of 3 shots have no reference of their own and take the one before theirs: frames 23-34 "
            "(00:00:00.920)") in err
    assert ("note: 000014.png looks like neither frame 14 nor its shot; it looks most like the shot from frame 23 "
            "(00:00:00.920): is it misnumbered?") in err
    assert "000000.png: from frame 0, keyframe (lightness" in err
    assert "000014.png: from frame 14, exemplar (lightness" in err
    assert "not coloured, left out: 000023.png" in err
    code, err = cli(capsys, "colorize", film, "--refs", out, "--ref", out / "000000.png", "-o", tmp_path / "x.mkv")
    assert code == 2 and "give either --refs DIR or --ref/--ref-at, not both" in err
