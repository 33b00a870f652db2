"""The review page's web application (Starlette): the page, its pictures and its API.

Every request must carry the token, in the address (``?token=``, which the page then keeps
in a cookie) or in that cookie; a request without it is refused whole. Files are only ever
named by frame numbers, so no request reaches outside the folder.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..filter import shots as shots_mod
from . import changes
from .film import Film
from .changes import NotItsFrame
from .folder import CACHE, ReviewError, ReviewFolder, Shot, StaleView
from .preview import preview, references_key
from .thumbs import Thumbnails

#: The cookie that keeps the token, named after it: cookies are per host, not per port, and
#: two folders reviewed at once must not take each other's.
COOKIE = "vsexcolor_review_{}"
#: Which shots the grid's filter shows.
FILTERS = {
    "all": lambda s: True,
    "automatic": lambda s: s["state"] == "automatic",
    "replaced": lambda s: s["state"] == "replaced",
    "re-picked": lambda s: s["state"] == "re-picked",
    "needs-colour": lambda s: s["needs_colour"],
    "approved": lambda s: s["approved"],
    "unapproved": lambda s: not s["approved"],
}


@dataclass
class Review:
    """What the page serves: the folder, its film and its thumbnails."""

    folder: ReviewFolder
    film: Film
    thumbs: Thumbnails

    def card(self, shot: Shot) -> dict:
        """A shot as the page shows it."""
        keyframes = []
        for frame in sorted(shot.refs):
            try:
                thumb, colour = self.thumbs.get(shot.refs[frame])
            except ValueError:  # a damaged picture: the page says so, and the rest still opens
                keyframes.append({"frame": frame, "colour": False, "v": "", "damaged": True})
                continue
            keyframes.append({"frame": frame, "colour": colour, "v": thumb.name})
        return {"number": shot.number, "first": shot.first, "last": shot.last, "start": shot.start,
                "duration_s": shot.duration_s, "length": shot.last - shot.first + 1, "state": shot.state,
                "approved": shot.approved, "version": shot.version, "exported": list(shot.exported),
                "keyframes": keyframes, "needs_colour": not any(k["colour"] for k in keyframes)}


def create_app(review: Review, token: str) -> Starlette:
    """The page's application; ``token`` is the secret every request must carry."""
    static = resources.files("vsexcolor.review") / "static"

    async def page(request: Request) -> Response:
        response = HTMLResponse((static / "index.html").read_text())
        response.set_cookie(cookie_name(token), token, httponly=True, samesite="strict")
        return response

    async def folder_info(request: Request) -> Response:
        film, folder = review.film, review.folder
        return JSONResponse({"folder": str(folder.folder), "command": film.command, "shots": len(folder.rows),
                             "unapproved": folder.unapproved(), "model": film.colorizer is not None,
                             "width": film.clip.width, "height": film.clip.height, "fps": film.fps})

    async def shot_list(request: Request) -> Response:
        offset, limit = _int(request, "offset", 0), min(_int(request, "limit", 60), 500)
        keep = FILTERS.get(request.query_params.get("state", "all"))
        if keep is None:
            raise ReviewError(f"state must be one of {', '.join(FILTERS)}")

        def listed() -> dict:
            every = review.folder.shots()
            if keep is FILTERS["all"]:  # only the page asked for is read
                return {"total": len(every), "shots": [review.card(s) for s in every[offset:offset + limit]]}
            cards = [c for c in map(review.card, every) if keep(c)]
            return {"total": len(cards), "shots": cards[offset:offset + limit]}

        return JSONResponse(await run_in_threadpool(listed))

    async def shot_view(request: Request) -> Response:
        number = request.path_params["number"]
        return JSONResponse(await run_in_threadpool(lambda: review.card(review.folder.shot(number))))

    async def thumbnail(request: Request) -> Response:
        picture = _picture(review, request.path_params["frame"], request.path_params["kind"])
        try:
            thumb, _ = await run_in_threadpool(review.thumbs.get, picture)
        except ValueError as e:
            raise ReviewError(str(e)) from None
        return FileResponse(thumb, headers={"Cache-Control": "private, max-age=86400"})

    async def picture(request: Request) -> Response:
        return FileResponse(_picture(review, request.path_params["frame"], request.path_params["kind"]),
                            headers={"Cache-Control": "no-cache"})

    async def film_frame(request: Request) -> Response:
        n = request.path_params["frame"]
        if not 0 <= n < review.film.clip.num_frames:
            raise ReviewError(f"frame {n} is not in the film (0 to {review.film.clip.num_frames - 1})")
        full = _int(request, "full", 0)

        def encoded() -> bytes:
            gray = review.film.gray(n)
            if full:  # the frame to colour by hand, as `vsexcolor shots` writes it
                return cv2.imencode(".png", gray)[1].tobytes()
            return cv2.imencode(".jpg", shots_mod.thumbnail(gray, 480))[1].tobytes()

        if full:
            return Response(await run_in_threadpool(encoded), media_type="image/png",
                            headers={"Content-Disposition": f'attachment; filename="{n:06d}.png"'})
        return Response(await run_in_threadpool(encoded), media_type="image/jpeg")

    async def shot_preview(request: Request) -> Response:
        shot = review.folder.shot(request.path_params["number"])
        key = references_key(review.folder.pictures())
        path = await run_in_threadpool(preview, review.film, shot, key, review.folder.folder / CACHE)
        return FileResponse(path, media_type="image/webp")

    async def upload(request: Request) -> Response:
        if int(request.headers.get("content-length", 0)) > changes.MAX_UPLOAD + 2**16:
            raise ReviewError(f"the picture is more than the {changes.MAX_UPLOAD // 2**20} MB taken: save it as PNG "
                              f"or JPEG")
        form = await request.form()
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise ReviewError("no picture was sent: choose or drop one")
        data = await file.read()
        return await _changed(changes.upload, review.folder, review.film, request.path_params["number"],
                              str(form.get("version", "")), _form_int(form, "frame"), data,
                              form.get("exemplar") == "1")

    async def repick(request: Request) -> Response:
        body = await _json(request)
        return await _changed(changes.repick, review.folder, review.film, request.path_params["number"],
                              str(body.get("version", "")), _body_int(body, "frame"), _body_int(body, "to"))

    async def revert(request: Request) -> Response:
        body = await _json(request)
        return await _changed(changes.revert, review.folder, request.path_params["number"],
                              str(body.get("version", "")))

    async def approve(request: Request) -> Response:
        body = await _json(request)
        return await _changed(changes.approve, review.folder, request.path_params["number"],
                              str(body.get("version", "")), bool(body.get("approved", True)))

    async def _changed(change, *args) -> Response:
        shot = await run_in_threadpool(change, *args)
        return JSONResponse({"shot": await run_in_threadpool(review.card, shot),
                             "unapproved": review.folder.unapproved()})

    routes = [
        Route("/", page),
        Route("/api/folder", folder_info),
        Route("/api/shots", shot_list),
        Route("/api/shots/{number:int}", shot_view),
        Route("/api/shots/{number:int}/preview", shot_preview),
        Route("/api/shots/{number:int}/upload", upload, methods=["POST"]),
        Route("/api/shots/{number:int}/repick", repick, methods=["POST"]),
        Route("/api/shots/{number:int}/revert", revert, methods=["POST"]),
        Route("/api/shots/{number:int}/approve", approve, methods=["POST"]),
        Route("/thumb/{kind:str}/{frame:int}", thumbnail),
        Route("/picture/{kind:str}/{frame:int}", picture),
        Route("/frame/{frame:int}", film_frame),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={ReviewError: _refused})
    app.add_middleware(TokenCheck, token=token)
    return app


async def _refused(request: Request, error: Exception) -> Response:
    """A refused request: one line, and whether the picture could be an exemplar instead."""
    status = 409 if isinstance(error, StaleView) else 422 if isinstance(error, NotItsFrame) else 400
    return JSONResponse({"error": str(error), "exemplar": isinstance(error, NotItsFrame)}, status_code=status)


class TokenCheck:
    """Refuses every request that carries neither the token nor the page's cookie."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.query_params.get("token") or request.cookies.get(cookie_name(self.token)) or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                response = PlainTextResponse("vsexcolor review: wrong or missing token: open the address that "
                                             "`vsexcolor review` printed (it ends in ?token=...)", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def cookie_name(token: str) -> str:
    return COOKIE.format(hashlib.sha256(token.encode()).hexdigest()[:12])


def _picture(review: Review, frame: int, kind: str) -> Path:
    """A picture of the folder by its frame: ``colour``, the reference as it is now;
    ``gray``, the gray frame beside it (the reference itself where that is gray)."""
    if kind not in ("colour", "gray"):
        raise ReviewError(f"a picture is colour or gray, not {kind!r}")
    current = review.folder.pictures().get(frame)
    path = review.folder.gray_of(frame) if kind == "gray" else None
    if path is None and current is None:
        raise ReviewError(f"frame {frame} has no picture in the folder")
    return path or current


def _int(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        raise ReviewError(f"{name} must be a whole number, got {request.query_params[name]!r}") from None


def _form_int(form, name: str) -> int:
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise ReviewError(f"{name} must be a frame number") from None


def _body_int(body: dict, name: str) -> int:
    if not isinstance(body.get(name), int):
        raise ReviewError(f"{name} must be a frame number, got {body.get(name)!r}")
    return body[name]


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ReviewError("the request must be a JSON object")
    return body
