"""``vsexcolor review``: a shots folder as a page in the browser, to check, replace, re-pick
and approve every shot's keyframes before the long render (needs ``vsexcolor[review]``)."""
from __future__ import annotations

import argparse
import secrets
import shlex
import socket
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

import vapoursynth as vs

from ..devices import parse_device
from ..filter.keyframes import load_colorizer
from ..filter.scenes import DEFAULT_THRESHOLD
from ..render.cluster import is_loopback_host
from ..render.pipeline import RenderError
from ..render.video import VideoInfo
from ..weights.ddcolor import KeyframeModelError, find_keyframe_model
from ._errors import CommandError
from .colorize import ColorizeRecipe
from .render import script_recipe
from .shots import read_film

EXTRA = "pip install 'vsexcolor[review]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review", help="review a shots folder's keyframes in the browser: replace, re-pick, approve",
        description="Serve the folder `vsexcolor shots` wrote as a page: every shot's keyframes, gray and in "
                    "colour; replace one by uploading a hand-coloured picture, re-pick another frame, revert, "
                    "approve. Every change is written to DIR at once, as `vsexcolor colorize FILM --refs DIR` "
                    "reads it; a picture replaced goes to DIR/history/. The address printed holds a token "
                    f"without which every request is refused. Needs the review extra: {EXTRA}.")
    parser.add_argument("folder", type=Path, metavar="DIR", help="the folder `vsexcolor shots` wrote")
    parser.add_argument("--port", type=int, default=0, help="the port to serve on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to serve on (default 127.0.0.1, this machine only; from another "
                             "machine, prefer an SSH tunnel: ssh -L 8000:127.0.0.1:PORT)")
    parser.add_argument("--open", action="store_true", help="open the page in the browser")
    parser.add_argument("--keyframe-model", metavar="NAME|PATH", default=None,
                        help="the DDColor model a re-picked frame is coloured with (default: the first in the "
                             "model folder; none there: a re-picked frame needs colour by hand)")
    parser.add_argument("--device", default="auto", metavar="D", help="for the keyframe model: auto, cpu or cuda[:N]")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401  (the extra: asked for before anything is read)
        from ..review.app import create_app
    except ImportError as e:
        raise CommandError(f"the review page needs {e.name}, of the review extra: {EXTRA}") from None
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be in 0..65535, got {args.port}")
    review = open_review(args.folder, args.keyframe_model, args.device)
    token = secrets.token_urlsafe(24)
    sock = _bound(args.host, args.port)
    host, port = sock.getsockname()[:2]
    address = f"http://{f'[{host}]' if ':' in host else host}:{port}/?token={token}"
    if not is_loopback_host(args.host):
        print(f"vsexcolor review: WARNING: serving on {args.host}, which other machines may reach: anyone with the "
              f"address below can change {args.folder}; an SSH tunnel to 127.0.0.1 is safer", file=sys.stderr)
    print(f"vsexcolor review: {len(review.folder.rows)} shots of {args.folder} at {address} (Ctrl-C ends it)",
          file=sys.stderr, flush=True)
    if args.open:
        webbrowser.open(address)
    _serve(create_app(review, token), sock)
    return 0


def open_review(folder: Path, keyframe_model: str | None = None, device: str = "auto"):
    """The folder, its film and its thumbnails, as the page serves them."""
    from ..review.app import Review
    from ..review.film import Film
    from ..review.folder import CACHE, ReviewError, ReviewFolder
    from ..review.thumbs import Thumbnails

    if not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is not a folder: give the folder `vsexcolor shots -o DIR` wrote")
    try:
        shots = ReviewFolder(folder)
    except ReviewError as e:
        raise CommandError(str(e)) from None
    meta = shots.meta
    source = Path(meta["input"])
    pairs = sorted(meta.get("arguments", {}).items())
    film = read_film(argparse.Namespace(input=source, arg=pairs, scene_threshold=meta.get("scene_threshold"),
                                        pick=meta.get("pick"), min_gap=None, max_gap=None, one_keyframe=False))
    model = _model(keyframe_model)
    colorizer = load_colorizer(model, _device(device)) if model else None
    if source.suffix.lower() == ".vpy":
        coloured = _checked(script_recipe(source, pairs).build)
        command = ["vsexcolor", "render", str(source), *(a for k, v in pairs for a in ("-a", f"{k}={v}"))]
    else:
        coloured, command = _file_render(film.info, folder, film.pick, film.scene_threshold, model, keyframe_model)
    return Review(shots, Film(film.clip, coloured, colorizer, shlex.join(command), float(film.info.fps)),
                  Thumbnails(folder / CACHE))


def _file_render(info: VideoInfo, folder: Path, pick: str, threshold: float, model: Path | None,
                 choice: str | None) -> tuple[Callable[[], vs.VideoNode], list[str]]:
    """The film coloured from ``folder`` as ``vsexcolor colorize FILM --refs DIR`` colours
    it, and that command."""
    keyframe_pick = pick if pick in ("first", "sharpest") else "sharpest"
    options = {"backend": "auto", "weights": None, "keyframe_model": str(model.absolute()) if model else "none",
               "keyframe_pick": keyframe_pick, "direction": "both", "propagate": False, "preset": "default",
               "saturation": None, "smooth": None, "pixels": None, "scene_threshold": threshold, "device": "auto"}
    recipe = ColorizeRecipe(info, (), tuple(options.items()), folder.resolve())
    command = ["vsexcolor", "colorize", str(info.path), "--refs", str(folder)]
    command += ["--keyframe-pick", keyframe_pick] if keyframe_pick != "sharpest" else []
    command += ["--scene-threshold", f"{threshold:g}"] if threshold != DEFAULT_THRESHOLD else []
    command += ["--keyframe-model", choice] if choice else []
    return _checked(recipe.build), command


def _checked(build: Callable[[], vs.VideoNode]) -> Callable[[], vs.VideoNode]:
    """``build``, its failure told as the page tells a refusal."""
    from ..review.folder import ReviewError

    def built() -> vs.VideoNode:
        try:
            return build()
        except RenderError as e:
            raise ReviewError(f"no preview: {e}") from None

    return built


def _model(choice: str | None) -> Path | None:
    """The keyframe model: the one named (an error where it is missing), else the first in
    the model folder, else none."""
    try:
        return find_keyframe_model(choice)
    except KeyframeModelError as e:
        if choice is not None:
            raise CommandError(f"--keyframe-model: {e}") from None
        return None


def _device(name: str):
    try:
        return parse_device(name)
    except ValueError as e:
        raise CommandError(f"--device {e}") from None


def _bound(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise CommandError(f"--host {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise CommandError(f"cannot serve on {host}:{port} ({e.strerror}): choose another --port, or leave it "
                           f"out for a free one") from None
    sock.listen(64)
    return sock


def _serve(app, sock: socket.socket) -> None:
    """Serve until Ctrl-C, which ends it with the command's one line."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
