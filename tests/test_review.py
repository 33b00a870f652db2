"""`vsexcolor review`: a shots folder as a page. Every change is written to the folder at
once, the picture it replaces kept in history/, and `colorize --refs DIR` renders what the
page shows; without the token nothing is served, and bad input is one line with nothing
written. (The page in a real browser: tests/test_review_browser.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import vapoursynth as vs

import vsexcolor
from clips import decode_rgb, sample_clip_path
from media import write_video
from vsexcolor import commands, open_clip, probe
from vsexcolor.filter import PROP_KEYFRAME, PROP_REFERENCE
from vsexcolor.filter.ref_inputs import files_in

warnings.filterwarnings("ignore", message=".*httpx.*")  # Starlette's note on its test client's transport
from starlette.testclient import TestClient  # noqa: E402

from vsexcolor.commands.review import open_review  # noqa: E402
from vsexcolor.review import changes  # noqa: E402
from vsexcolor.review.app import create_app  # noqa: E402

W, H = 96, 64
TOKEN = "t0ken"
#: The shots `vsexcolor shots` finds in the film below, and the frame it picks of each.
SHOTS = [(0, 13, 7), (14, 22, 14), (23, 34, 34)]


@pytest.fixture(scope="module")
def colour_frames() -> np.ndarray:
    """Three shots of 14, 9 and 12 frames (as tests/test_shots.py's film)."""
    return np.concatenate([decode_rgb(sample_clip_path("bikes"), 14, (W, H)),
                           decode_rgb(sample_clip_path("carphone_pristine"), 9, (W, H)),
                           decode_rgb(sample_clip_path("bigbuckbunny"), 12, (W, H))])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, colour_frames) -> Path:
    """The black-and-white film's shots as `vsexcolor shots` (without --colorize) exports them."""
    folder = tmp_path_factory.mktemp("film")
    gray = np.stack([np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[..., :1], 3, -1) for f in colour_frames])
    film = write_video(folder / "film.mkv", gray, pix_fmt="gray", codec="ffv1")
    assert commands.main(["shots", str(film), "-o", str(folder / "shots")]) == 0
    return folder / "shots"


@pytest.fixture
def folder(exported, tmp_path) -> Path:
    copy = tmp_path / "shots"
    copy.mkdir()
    for path in exported.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


@pytest.fixture
def client(folder) -> TestClient:
    client = TestClient(create_app(open_review(folder), TOKEN))
    assert client.get(f"/?token={TOKEN}").status_code == 200  # the page keeps the token in a cookie
    return client


def coloured(folder: Path, frame: int, colour_frames: np.ndarray, like: int | None = None) -> bytes:
    """Frame ``frame`` coloured by hand as an editor's "color" blend does (its gray kept,
    the colours of the film's frame ``like``, by default its own): PNG bytes."""
    gray = cv2.imread(str(folder / "gray" / f"{frame:06d}.png") if (folder / "gray" / f"{frame:06d}.png").exists()
                      else str(folder / f"{frame:06d}.png"), cv2.IMREAD_UNCHANGED)
    ycc = cv2.cvtColor(colour_frames[frame if like is None else like], cv2.COLOR_RGB2YCrCb)
    if like is None:
        ycc[..., 0] = gray
    return cv2.imencode(".png", cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))[1].tobytes()


def shot(client: TestClient, number: int) -> dict:
    response = client.get(f"/api/shots/{number}")
    assert response.status_code == 200, response.text
    return response.json()


def upload(client: TestClient, number: int, frame: int, data: bytes, exemplar: bool = False, version=None):
    version = version or shot(client, number)["version"]
    return client.post(f"/api/shots/{number}/upload", data={"version": version, "frame": str(frame),
                                                             "exemplar": "1" if exemplar else "0"},
                       files={"file": ("mine.png", data, "image/png")})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            and "review-cache" not in p.parts}


def keyframes_rendered(folder: Path) -> list[tuple[int, int]]:
    """Each frame's keyframe (-1: none, coloured from an exemplar) and the reference in force
    (its index in the folder's, by frame), as `colorize --refs DIR` renders the folder (the
    weight-free backend)."""
    meta = json.loads((folder / "shots.json").read_text())
    clip = open_clip(probe(meta["input"], progress=False))
    out = vsexcolor.colorize(clip, folder, backend="propagate", pixels=W * H, keyframe_model="none")
    return [(f.props[PROP_KEYFRAME], f.props[PROP_REFERENCE]) for f in out.frames()]


def test_without_the_token_every_request_is_refused(folder):
    client = TestClient(create_app(open_review(folder), TOKEN))
    for path in ("/", "/api/folder", "/api/shots", "/static/review.js", "/thumb/gray/7", "/frame/3",
                 f"/?token={TOKEN}x"):
        response = client.get(path)
        assert response.status_code == 403 and "wrong or missing token" in response.text, path
    before = snapshot(folder)
    assert client.post("/api/shots/1/approve", json={"version": "x"}).status_code == 403
    assert snapshot(folder) == before
    assert client.get(f"/api/folder?token={TOKEN}").status_code == 200


def test_the_grid_lists_every_shot_needing_colour_a_page_at_a_time(client, folder):
    info = client.get("/api/folder").json()
    assert info["shots"] == 3 and info["unapproved"] == 3 and not info["model"]
    film = json.loads((folder / "shots.json").read_text())["input"]
    assert info["command"] == f"vsexcolor colorize {film} --refs {folder}"
    page = client.get("/api/shots?offset=1&limit=1").json()
    assert page["total"] == 3 and [s["number"] for s in page["shots"]] == [2]
    every = client.get("/api/shots").json()["shots"]
    assert [(s["first"], s["last"], [k["frame"] for k in s["keyframes"]]) for s in every] == [
        (first, last, [pick]) for first, last, pick in SHOTS]
    # Exported without --colorize: every shot needs colour, and is automatic.
    assert all(s["needs_colour"] and s["state"] == "automatic" and not s["approved"] for s in every)
    assert client.get("/api/shots?state=needs-colour").json()["total"] == 3
    assert client.get("/api/shots?state=approved").json()["total"] == 0
    thumbs = sorted((folder / "review-cache" / "thumbs").iterdir())
    assert len(thumbs) == 3 and all(t.name.endswith(".g.jpg") for t in thumbs)
    jpeg = client.get(f"/thumb/gray/7?v={every[0]['keyframes'][0]['v']}")
    assert jpeg.status_code == 200 and cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), 1).shape[1] == 240
    client.get("/api/shots")
    assert sorted((folder / "review-cache" / "thumbs").iterdir()) == thumbs  # made once


def test_an_upload_replaces_the_keyframe_keeps_the_old_one_and_colorize_renders_it(client, folder, colour_frames):
    old = (folder / "000007.png").read_bytes()
    mine = coloured(folder, 7, colour_frames)
    response = upload(client, 1, 7, mine)
    assert response.status_code == 200, response.text
    result = response.json()["shot"]
    assert result["state"] == "replaced" and not result["needs_colour"]
    assert (folder / "000007.png").read_bytes() == mine
    [kept] = (folder / "history").iterdir()
    assert kept.name.startswith("000007.") and kept.read_bytes() == old
    assert (folder / "gray" / "000007.png").read_bytes() == old  # the gray frame, still to be had
    rows = json.loads((folder / "shots.json").read_text())["shots"]
    assert [r.get("state", "automatic") for r in rows] == ["replaced", "automatic", "automatic"]
    # history/ and the page's cache are left out of the references: the render reads the folder.
    assert [p.name for p in files_in(folder)] == ["000007.png", "000014.png", "000034.png"]
    # The other shots, still gray, take the reference before them, as an exemplar.
    assert keyframes_rendered(folder) == [(7, 0)] * 14 + [(-1, 0)] * 21


def test_a_picture_of_another_frame_is_refused_as_keyframe_and_taken_as_an_exemplar(client, folder, colour_frames):
    other = coloured(folder, 14, colour_frames, like=30)  # the third shot's colours: not frame 14
    before = snapshot(folder)
    response = upload(client, 2, 14, other)
    assert response.status_code == 422 and response.json()["exemplar"]
    assert response.json()["error"].startswith("the picture's lightness does not match frame 14 (")
    assert snapshot(folder) == before
    response = upload(client, 2, 14, other, exemplar=True)
    assert response.status_code == 200, response.text
    assert (folder / "000014.png").read_bytes() == other
    assert upload(client, 1, 7, coloured(folder, 7, colour_frames)).status_code == 200
    assert keyframes_rendered(folder) == [(7, 0)] * 14 + [(-1, 1)] * 21  # shot 2 (and 3) from the exemplar


@pytest.mark.parametrize("name, data, message", [
    ("not a picture", b"hello", "the file is not a picture vsexcolor reads (PNG, JPEG, TIFF, WebP or BMP): save it "
                                "as one"),
    ("another size", cv2.imencode(".png", np.full((32, 48, 3), (0, 80, 200), np.uint8))[1].tobytes(),
     "the picture is 48x32 and the frame 96x64: colour the exported frame at its own size"),
    ("gray", cv2.imencode(".png", np.full((H, W), 90, np.uint8))[1].tobytes(),
     "the picture has no colour: colour it first"),
    ("cut short", cv2.imencode(".png", np.full((H, W, 3), (0, 80, 200), np.uint8))[1].tobytes()[:60],
     "the picture cannot be decoded (damaged or cut short): export it again"),
])
def test_a_bad_upload_is_one_line_and_writes_nothing(client, folder, name, data, message):
    before = snapshot(folder)
    response = upload(client, 1, 7, data)
    assert response.status_code == 400 and response.json()["error"] == message, name
    assert snapshot(folder) == before
    assert not list((folder / "review-cache").glob(".upload-*"))


def test_a_too_large_upload_and_a_path_outside_the_folder_are_refused(client, folder, colour_frames, monkeypatch):
    before = snapshot(folder)
    monkeypatch.setattr(changes, "MAX_UPLOAD", 1000)
    response = upload(client, 1, 7, coloured(folder, 7, colour_frames) + b"\0" * 2000)
    assert response.status_code == 400 and response.json()["error"].endswith("MB taken: save it as PNG or JPEG")
    for path in ("/picture/colour/..%2F..%2Ffilm.mkv", "/static/..%2F..%2Ffolder.py", "/picture/x/7",
                 "/picture/colour/8"):
        assert client.get(path).status_code in (400, 404), path
    assert client.get("/picture/colour/8").json()["error"] == "frame 8 has no picture in the folder"
    assert snapshot(folder) == before


def test_a_change_made_on_a_stale_view_is_refused(client, folder, colour_frames):
    seen = shot(client, 1)["version"]  # the first tab's view
    assert upload(client, 1, 7, coloured(folder, 7, colour_frames), version=seen).status_code == 200  # the second's
    before = snapshot(folder)
    for response in (client.post("/api/shots/1/approve", json={"version": seen}),
                     client.post("/api/shots/1/revert", json={"version": seen}),
                     client.post("/api/shots/1/repick", json={"version": seen, "frame": 7, "to": 3}),
                     upload(client, 1, 7, coloured(folder, 7, colour_frames), version=seen)):
        assert response.status_code == 409
        assert response.json()["error"] == ("shot 1 was changed in another tab or window since this page showed "
                                            "it: reload the page and make the change again")
    assert snapshot(folder) == before


def test_a_re_pick_without_a_model_needs_colour_and_revert_brings_the_export_back(client, folder, colour_frames):
    exported = (folder / "000014.png").read_bytes()
    response = client.post("/api/shots/2/repick", json={"version": shot(client, 2)["version"], "frame": 14, "to": 16})
    assert response.status_code == 200, response.text
    result = response.json()["shot"]
    assert [k["frame"] for k in result["keyframes"]] == [16] and result["needs_colour"]
    assert result["state"] == "re-picked"
    assert not (folder / "000014.png").exists() and [p.read_bytes() for p in (folder / "history").iterdir()] == [
        exported]
    gray = client.get("/frame/16?full=1")  # offered for download, as the export writes it
    assert gray.status_code == 200 and gray.content == (folder / "000016.png").read_bytes()
    assert (folder / "gray" / "000016.png").read_bytes() == gray.content
    assert client.post("/api/shots/2/repick", json={"version": result["version"], "frame": 16, "to": 40}).json()[
        "error"] == "frame 40 is not in shot 2 (frames 14 to 22)"
    assert upload(client, 2, 16, coloured(folder, 16, colour_frames)).status_code == 200
    response = client.post("/api/shots/2/revert", json={"version": shot(client, 2)["version"]})
    assert response.status_code == 200
    assert [k["frame"] for k in response.json()["shot"]["keyframes"]] == [14]
    assert (folder / "000014.png").read_bytes() == exported and not (folder / "000016.png").exists()
    assert len(list((folder / "history").iterdir())) == 3  # 14 as exported, 16 gray, 16 coloured
    assert "state" not in json.loads((folder / "shots.json").read_text())["shots"][1]


def test_approval_is_recorded_counted_and_taken_back_by_a_change(client, folder, colour_frames):
    for number in (1, 2):
        response = client.post(f"/api/shots/{number}/approve", json={"version": shot(client, number)["version"]})
        assert response.status_code == 200
    assert response.json()["unapproved"] == 1
    rows = json.loads((folder / "shots.json").read_text())["shots"]
    assert [r.get("approved", False) for r in rows] == [True, True, False]
    assert client.get("/api/shots?state=unapproved").json()["total"] == 1
    assert upload(client, 1, 7, coloured(folder, 7, colour_frames)).json()["unapproved"] == 2


def test_a_preview_is_the_shot_as_colorize_renders_it_made_once(client, folder, colour_frames):
    from PIL import Image

    response = client.get("/api/shots/1/preview")
    assert response.status_code == 400 and response.json()["error"].startswith(
        "no preview: ref must be a folder holding at least one coloured image")  # nothing coloured yet
    assert upload(client, 1, 7, coloured(folder, 7, colour_frames)).status_code == 200
    response = client.get("/api/shots/3/preview")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    with Image.open(Path(folder / "review-cache" / "previews").glob("000023-*").__next__()) as webp:
        assert webp.size == (320, 214)
        assert 2 <= webp.n_frames <= 12  # frames 23 to 34 (WebP joins a frame equal to the one before it)
        webp.seek(webp.n_frames - 1)
        last = np.asarray(webp.convert("RGB"), np.float32)
    # Shot 3 takes shot 1's keyframe (the one before it): the render's frame 34, small.
    clip = open_clip(probe(json.loads((folder / "shots.json").read_text())["input"], progress=False))
    render = vsexcolor.colorize(clip, folder, keyframe_model="none")
    rgb = vs.core.resize.Bicubic(render, format=vs.RGB24, matrix_in_s="709").get_frame(34)
    frame = cv2.resize(np.stack([np.asarray(rgb[p]) for p in range(3)], -1), (320, 214), interpolation=cv2.INTER_AREA)
    assert np.abs(last - frame).mean() < 6  # WebP's loss
    made = {p: p.stat().st_mtime_ns for p in (folder / "review-cache" / "previews").iterdir()}
    assert client.get("/api/shots/3/preview").content == response.content
    assert {p: p.stat().st_mtime_ns for p in (folder / "review-cache" / "previews").iterdir()} == made


def test_the_command_prints_the_address_serves_only_with_its_token_and_ends_on_ctrl_c(folder):
    import httpx

    env = {**os.environ, "PYTHONPATH": str(Path(vsexcolor.__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "vsexcolor", "review", str(folder)], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert line.startswith(f"vsexcolor review: 3 shots of {folder} at http://127.0.0.1:"), line
        address = line.split(" at ")[1].split(" ")[0]
        assert address.split("?token=")[1]
        assert httpx.get(address.split("?")[0] + "api/folder").status_code == 403
        assert httpx.get(address.replace("/?", "/api/folder?")).json()["shots"] == 3
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
    assert rest.strip().splitlines() == ["vsexcolor review: interrupted"]


def test_without_the_extra_the_command_says_what_to_install(folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert commands.main(["review", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == ("vsexcolor review: the review page needs uvicorn, of the review "
                                              "extra: pip install 'vsexcolor[review]'")


def test_a_folder_that_is_no_export_is_one_line(tmp_path, capsys):
    assert commands.main(["review", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"vsexcolor review: {tmp_path} holds no shots.json of `vsexcolor "
                                              f"shots`: export the film's shots into it first (vsexcolor shots "
                                              f"FILM -o {tmp_path})")


def test_a_port_in_use_is_one_line_and_another_host_than_loopback_a_warning(folder, capsys, monkeypatch):
    import socket

    from vsexcolor.commands import review

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    with taken:
        assert commands.main(["review", str(folder), "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip() == (f"vsexcolor review: cannot serve on 127.0.0.1:{port} (Address already "
                                              f"in use): choose another --port, or leave it out for a free one")
    served = []
    monkeypatch.setattr(review, "_serve", lambda app, sock: served.append(sock.getsockname()))
    assert commands.main(["review", str(folder), "--host", "0.0.0.0"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (f"vsexcolor review: WARNING: serving on 0.0.0.0, which other machines may reach: anyone with "
                        f"the address below can change {folder}; an SSH tunnel to 127.0.0.1 is safer")
    assert lines[1].startswith(f"vsexcolor review: 3 shots of {folder} at http://0.0.0.0:{served[0][1]}/?token=")


def test_two_folders_reviewed_at_once_keep_their_own_tokens(folder, exported):
    first = TestClient(create_app(open_review(folder), "one"))
    second = TestClient(create_app(open_review(exported), "two"))
    assert first.get("/?token=one").status_code == 200
    second.cookies = first.cookies  # one browser: cookies are per host, whatever the port
    assert second.get("/?token=two").status_code == 200
    first.cookies = second.cookies
    assert first.get("/api/folder").status_code == 200 and second.get("/api/folder").status_code == 200


def test_a_script_s_export_is_rendered_by_its_script(exported, tmp_path, colour_frames):
    film = json.loads((exported / "shots.json").read_text())["input"]
    script = tmp_path / "film.vpy"
    script.write_text("import vsexcolor\nfrom vsexcolor import open_clip, probe\n"
                      f"vsexcolor.colorize(open_clip(probe({film!r}, progress=False)), ref, backend='propagate', "
                      f"pixels={W * H}, keyframe_model='none').set_output()\n")
    folder = tmp_path / "shots"
    assert commands.main(["shots", str(script), "-a", f"ref={folder}", "-o", str(folder)]) == 0
    client = TestClient(create_app(open_review(folder), TOKEN))
    client.get(f"/?token={TOKEN}")
    assert client.get("/api/folder").json()["command"] == f"vsexcolor render {script} -a ref={folder}"
    assert upload(client, 1, 7, coloured(folder, 7, colour_frames)).status_code == 200
    response = client.get("/api/shots/1/preview")  # the script, run: its colorize call reads the folder
    assert response.status_code == 200 and response.content[8:12] == b"WEBP"


def test_a_damaged_picture_is_named_and_the_grid_still_opens(client, folder):
    (folder / "000014.png").write_bytes((folder / "000014.png").read_bytes()[:100])
    every = client.get("/api/shots").json()["shots"]
    assert every[1]["keyframes"] == [{"frame": 14, "colour": False, "v": "", "damaged": True}]
    assert [k["frame"] for s in every for k in s["keyframes"]] == [7, 14, 34]
    response = client.get("/thumb/colour/14")
    assert response.status_code == 400
    assert response.json()["error"] == "000014.png cannot be decoded (damaged or cut short): replace it"
