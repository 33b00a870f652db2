"""Rendering a clip into a video file in parts, resumably, here or on a Ray cluster.

A render is a :class:`Render`: a recipe that builds the clip (``vsexcolor colorize``'s
filter on a file, or a ``.vpy`` script), the timing and audio it is written with, and the
encoder. Its frames are cut into *parts*, each encoded into a file of its own in the work
folder (:mod:`.workfolder`) and joined at the end:

* where the clip comes out of ``colorize`` (a :class:`~vsexcolor.filter.Fingerprint` was
  recorded while building it), a part starts at the first frame and wherever the
  ``VsexcolorSceneStart`` prop changes: a part is a scene, which depends on nothing before it;
* elsewhere, every ``chunk`` frames from the first.

The rule reads only the frames' props, so a planning pass (:func:`plan_parts`, which runs no
network) finds the very parts a serial render finds as it goes; the farm (:mod:`.farm`)
renders them anywhere, and the joined file has the bytes of the serial render.
"""
from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
import vapoursynth as vs
from tqdm import tqdm

from ..filter import PROP_SCENE_START, PROP_SHOT_START, Fingerprint, recording
from ..memory import map_large_allocations
from .encode import CODECS, Encoder, concatenate, encodable
from .video import VideoError, VideoInfo
from .workfolder import WorkFolder, write_durably

#: Frames VapourSynth renders ahead: two let the finish of one frame run beside the
#: recurrence of the next; the recurrence is sequential, so more only hold memory.
PREFETCH = 2
#: ``--chunk``'s default: frames per part of a clip that does not come out of ``colorize``.
DEFAULT_CHUNK = 1000


class RenderError(Exception):
    """A render that cannot go on; the message says why in one line."""


class Recipe(Protocol):
    """How to build a render's clip, in this process or on another machine (picklable)."""

    def build(self) -> vs.VideoNode:
        """The clip to write. Raises RenderError for what the user must fix."""

    def paths(self) -> list[Path]:
        """Files building it reads: every machine rendering it must read them at the same path."""


@dataclass(frozen=True)
class Render:
    """Everything that makes a render's frames and files.

    ``info``: the frames' timestamps, frame rate and aspect ratio, and the file whose audio
    is copied; ``first`` and ``last``: the frames written (inclusive); ``chunk``: frames per
    part where parts are not scenes; ``threads``: torch's CPU threads while building and
    rendering, which change ``devc``'s results on the CPU.
    """

    recipe: Recipe
    info: VideoInfo
    codec: str
    crf: int | None
    first: int
    last: int
    chunk: int = DEFAULT_CHUNK
    threads: int = field(default_factory=lambda: _torch_threads())

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@dataclass
class Built:
    """A render's clip as built here: in a format the encoder takes (``pix_fmt``), and the
    fingerprints of its ``colorize`` nodes (none: parts are chunks)."""

    clip: vs.VideoNode
    pix_fmt: str
    fingerprints: list[Fingerprint]

    @property
    def by_scene(self) -> bool:
        return bool(self.fingerprints)


def build(render: Render, planning: bool = False) -> Built:
    """The render's clip, built here (with ``planning``, as :func:`~vsexcolor.filter.recording`
    makes it: blank frames with the output's props). From here on this process keeps large
    blocks out of its heap (:func:`~vsexcolor.memory.map_large_allocations`): it renders."""
    import torch

    map_large_allocations()
    torch.set_num_threads(render.threads)
    with recording(planning) as fingerprints:
        clip = render.recipe.build()
    clip, pix_fmt = encodable(clip, CODECS[render.codec])
    return Built(clip, pix_fmt, list(fingerprints))


def fingerprint_dicts(built: Built) -> list[dict]:
    return [vars(f) for f in built.fingerprints]


def starts_part(render: Render, built: Built) -> Callable[[int, vs.VideoFrame], bool]:
    """``starts(n, frame)``: does a part start at frame n? By scene: asked for the frames in
    order, the first asked always starts one. By chunk: every ``chunk`` frames from the
    first frame written (no frame needed: it may be None)."""
    previous: list[object] = []

    def by_scene(n: int, frame: vs.VideoFrame) -> bool:
        scene = frame.props.get(PROP_SCENE_START)
        starts = not previous or scene != previous[0]
        previous[:] = [scene]
        return starts

    def by_chunk(n: int, frame: vs.VideoFrame | None) -> bool:
        return (n - render.first) % render.chunk == 0

    return by_scene if built.by_scene else by_chunk


def part_firsts(render: Render, built: Built, a: int, b: int, run_first: int) -> list[int]:
    """The frames of ``a``..``b`` where parts start, within a run of frames to render that
    begins at ``run_first`` (where one starts); from the props of ``built`` (a planning
    clip is cheapest) where parts are scenes, else by counting. ``a``..``b`` may be any
    piece of the run: the frame before it is read to see whether ``a`` starts a part."""
    starts = starts_part(render, built)
    if not built.by_scene:
        return [n for n in range(a, b + 1) if starts(n, None) or n == a == run_first]
    before = a - 1 if a > run_first else a
    frames = built.clip[before:b + 1].frames(prefetch=8, close=True)
    return [n for n, frame in enumerate(frames, before) if starts(n, frame) and n >= a]


def frames_in(runs: Iterable[tuple[int, int]]) -> int:
    """The number of frames in runs of frames (first, last), inclusive."""
    return sum(b - a + 1 for a, b in runs)


def plan_parts(render: Render, built: Built, todo: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts (first, last) of the runs of frames ``todo``, found here (see
    :func:`part_firsts`)."""
    return parts_of(todo, [n for a, b in todo for n in part_firsts(render, built, a, b, a)])


def parts_of(todo: list[tuple[int, int]], firsts: list[int]) -> list[tuple[int, int]]:
    """The parts that start at ``firsts`` (sorted), each ending where the next starts or its
    run of frames ends."""
    parts = []
    for a, b in todo:
        inside = [n for n in firsts if a <= n <= b]
        parts += zip(inside, [n - 1 for n in inside[1:]] + [b])
    return parts


def encode(render: Render, built: Built, a: int, b: int, is_first: Callable[[int, vs.VideoFrame], bool],
           scratch: Path, tick: Callable[[], None]) -> Iterator[tuple[int, int, Path, bool]]:
    """Encode frames ``a``..``b`` of ``built``, one file per part (``is_first``), giving each
    part as ``(first, last, path, restart)`` once whole (``path``, a file of a name of its
    own in ``scratch``, is the caller's to move or delete before it asks for the next;
    ``restart``: the part restarts a shot at a keyframe inside it, see
    :func:`restarts_shot`). ``tick()`` after every frame."""
    codec = CODECS[render.codec]
    encoder: Encoder | None = None
    part_first, restart = a, False
    incomplete = scratch / f".incomplete-{secrets.token_hex(8)}.mp4"
    try:
        for n, frame in enumerate(built.clip[a:b + 1].frames(prefetch=PREFETCH, close=True), a):
            if is_first(n, frame):
                if encoder is not None:
                    encoder.close()
                    encoder = None
                    yield part_first, n - 1, incomplete, restart
                part_first, restart = n, restarts_shot(n, frame)
                encoder = Encoder(incomplete, codec, render.crf, built.pix_fmt, render.info, render.first, frame)
            encoder.write(frame, n)
            tick()
        encoder.close()
        encoder = None
        yield part_first, b, incomplete, restart
    finally:
        if encoder is not None:  # a part cut short: its half-written file goes
            encoder.close(flush=False)
        incomplete.unlink(missing_ok=True)


def restarts_shot(n: int, frame: vs.VideoFrame) -> bool:
    """Does output frame n restart the recurrence at a keyframe inside its shot (rather than
    start a shot)?"""
    props = frame.props
    return props.get(PROP_SCENE_START) == n and props.get(PROP_SHOT_START, n) != n


def one_line(error: Exception) -> str:
    """An error as one line. One raised in a frame callback reaches us as a vs.Error holding
    the callback's whole traceback, whose last line is the error itself."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else type(error).__name__
    return re.sub(r"^[\w.]+(Error|Exception): ", "", last) if isinstance(error, vs.Error) else last


def gaps(first: int, last: int, done: Mapping[int, tuple[int, Path]]) -> list[tuple[int, int]]:
    """The runs of frames in ``first``..``last`` that no finished part covers."""
    runs, n = [], first
    for a in sorted(done):
        if a > last:
            break
        if a > n:
            runs.append((n, a - 1))
        n = max(n, done[a][0] + 1)
    if n <= last:
        runs.append((n, last))
    return runs


def render_here(render: Render, built: Built, work: WorkFolder, todo: list[tuple[int, int]], progress: bool,
                name: str) -> None:
    """Render the runs of frames ``todo`` in this process, storing each part as it is done."""
    at = [todo[0][0] if todo else render.first]
    bar = tqdm(total=render.frames, initial=render.frames - frames_in(todo), desc=name,
               unit="frame", disable=not progress, dynamic_ncols=True)

    def tick() -> None:
        at[0] += 1
        bar.update()

    try:
        with bar:
            for a, b in todo:
                at[0] = a
                starts = starts_part(render, built)
                for first, last, path, restart in encode(render, built, a, b,
                                                         lambda n, frame: starts(n, frame) or n == a, work.folder,
                                                         tick):
                    work.add(first, last, path, restart)
    except KeyboardInterrupt:
        print(f"vsexcolor {name}: stopped at frame {at[0]}{kept_parts(work)}", file=sys.stderr)
        raise
    except (vs.Error, VideoError, av.FFmpegError) as e:
        raise RenderError(f"failed at frame {at[0]}: {one_line(e)}{kept_parts(work)}") from None


def kept_parts(work: WorkFolder) -> str:
    """How a message of a run that stopped ends: where it keeps finished parts for a
    ``--resume``; nothing where it has none (the work folder is then removed)."""
    if not work.parts():
        return ""
    return f"; the finished parts are kept in {work.folder}: run the same command with --resume to continue"


def finish(render: Render, work: WorkFolder, output: Path) -> int:
    """Join the work folder's parts with the audio into ``output`` (which appears whole or
    not at all) and remove the work folder; the number of parts joined."""
    parts = work.parts()
    covered = gaps(render.first, render.last, parts)
    if covered:
        raise RenderError(f"frames {covered[0][0]}..{covered[0][1]} are missing from {work.folder}")
    complete = work.folder / f"complete{output.suffix}"
    try:
        concatenate([path for _, (_, path) in sorted(parts.items())], complete, render.info, render.first,
                    render.last)
    except VideoError as e:
        complete.unlink(missing_ok=True)
        raise RenderError(f"{e}; the finished parts are kept in {work.folder}") from None
    write_durably(output, complete)
    work.remove()
    return len(parts)
