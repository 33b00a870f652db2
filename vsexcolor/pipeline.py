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

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
import vapoursynth as vs
from tqdm import tqdm

from .filter import PROP_SCENE_START, Fingerprint, recording
from .video import CODECS, Encoder, VideoError, VideoInfo, concatenate, encodable
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
    makes it: blank frames with the output's props)."""
    import torch

    torch.set_num_threads(render.threads)
    with recording(planning) as fingerprints:
        clip = render.recipe.build()
    clip, pix_fmt = encodable(clip, CODECS[render.codec])
    return Built(clip, pix_fmt, list(fingerprints))


def fingerprint_dicts(built: Built) -> list[dict]:
    return [vars(f) for f in built.fingerprints]


def starts_part(render: Render, built: Built) -> Callable[[int, vs.VideoFrame], bool]:
    """``starts(n, frame)``: does a part start at frame n? Asked for the frames in order from
    the first of a run of frames; the first asked always starts one. (Counting needs no
    frame: it may be None.)"""
    previous: list[object] = []

    def by_scene(n: int, frame: vs.VideoFrame) -> bool:
        scene = frame.props.get(PROP_SCENE_START)
        starts = not previous or scene != previous[0]
        previous[:] = [scene]
        return starts

    def by_chunk(n: int, frame: vs.VideoFrame | None) -> bool:
        starts = not previous or (n - render.first) % render.chunk == 0
        previous[:] = [n]
        return starts

    return by_scene if built.by_scene else by_chunk


def plan_parts(render: Render, todo: list[tuple[int, int]], progress: bool) -> list[tuple[int, int]]:
    """The parts (first, last) of the frame runs ``todo`` (each run starts a part), found
    without rendering them: from the props of the planning clip where parts are scenes
    (reading each run's frames, at a fraction of the cost of colorizing them), else by
    counting."""
    built = build(render, planning=True)
    parts: list[tuple[int, int]] = []
    with tqdm(total=sum(b - a + 1 for a, b in todo), desc="planning", unit="frame", leave=False,
              disable=not progress or not built.by_scene, dynamic_ncols=True) as bar:
        for a, b in todo:
            starts = starts_part(render, built)
            if built.by_scene:
                firsts = []
                for n, frame in enumerate(built.clip[a:b + 1].frames(prefetch=8, close=True), a):
                    if starts(n, frame):
                        firsts.append(n)
                    bar.update()
            else:
                firsts = [n for n in range(a, b + 1) if starts(n, None)]
            parts += zip(firsts, [f - 1 for f in firsts[1:]] + [b])
    return parts


def encode(render: Render, built: Built, a: int, b: int, is_first: Callable[[int, vs.VideoFrame], bool],
           scratch: Path, done: Callable[[int, int, Path], None], tick: Callable[[], None]) -> None:
    """Encode frames ``a``..``b`` of ``built``, one file per part (``is_first``), each
    handed to ``done(first, last, path)`` once whole (``path`` lies in ``scratch`` and may
    be moved). ``tick()`` after every frame."""
    codec = CODECS[render.codec]
    encoder: Encoder | None = None
    part_first = a
    incomplete = scratch / "incomplete.mp4"
    try:
        for n, frame in enumerate(built.clip[a:b + 1].frames(prefetch=PREFETCH, close=True), a):
            if is_first(n, frame):
                if encoder is not None:
                    encoder.close()
                    encoder = None
                    done(part_first, n - 1, incomplete)
                part_first = n
                encoder = Encoder(incomplete, codec, render.crf, built.pix_fmt, render.info, render.first, frame)
            encoder.write(frame, n)
            tick()
        encoder.close()
        encoder = None
        done(part_first, b, incomplete)
    finally:
        if encoder is not None:  # a part cut short: its half-written file goes
            encoder.close(flush=False)
        incomplete.unlink(missing_ok=True)


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
    hint = f"the finished parts are kept in {work.folder}: run the same command with --resume to continue"
    at = [todo[0][0] if todo else render.first]
    bar = tqdm(total=render.frames, initial=render.frames - sum(b - a + 1 for a, b in todo), desc=name,
               unit="frame", disable=not progress, dynamic_ncols=True)

    def tick() -> None:
        at[0] += 1
        bar.update()

    try:
        with bar:
            for a, b in todo:
                at[0] = a
                encode(render, built, a, b, starts_part(render, built), work.folder, work.add, tick)
    except KeyboardInterrupt:
        print(f"vsexcolor {name}: stopped at frame {at[0]}; {hint}", file=sys.stderr)
        raise
    except (vs.Error, VideoError, av.FFmpegError) as e:
        raise RenderError(f"failed at frame {at[0]}: {e}; {hint}") from None


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
