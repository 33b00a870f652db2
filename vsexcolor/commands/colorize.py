"""``vsexcolor colorize``: colorize a video file, scene by scene, resumably.

The work folder ``OUTPUT.parts/`` holds ``manifest.json`` (the settings that shape the
result) and one finished file per scene. The recurrence restarts at every scene start, so
a scene depends on nothing before it: a run that resumes at the first unfinished scene
writes exactly what an uninterrupted run would have. The output appears, by a rename,
only once every scene is done and joined with the audio.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs
from tqdm import tqdm

from .. import __version__
from ..cli import CommandError
from ..filter import PRESETS, PROP_BACKEND, PROP_SCENE_START, colorize
from ..reference import ReferenceError, read_image
from ..resolution import DEFAULT_PIXELS
from ..scenes import DEFAULT_THRESHOLD
from ..video import (CODECS, Encoder, VideoError, VideoInfo, check_input, check_output, concatenate, encodable,
                     open_clip, probe)

_PART = re.compile(r"frames-(\d{8})-(\d{8})\.mp4")
# Frames VapourSynth renders ahead: two let the finish of one frame run beside the
# recurrence of the next; the recurrence is sequential, so more only hold memory.
_PREFETCH = 2


@dataclass(frozen=True)
class Job:
    """One ``vsexcolor colorize`` run; the fields are the command's options.

    ``refs``: {first frame: image} (the reference for frames before the first key is the
    first one); ``start``/``end``: first and last frame written (inclusive, as vspipe's);
    ``pixels``: the internal area in pixels (None: the preset's).
    """

    input: Path
    output: Path
    refs: Mapping[int, Path] = field(default_factory=dict)
    propagate: bool = False
    backend: str = "auto"
    weights: Path | None = None
    pixels: int | None = None
    preset: str = "default"
    saturation: float | None = None
    smooth: float | None = None
    scene_threshold: float = DEFAULT_THRESHOLD
    device: str = "auto"
    start: int = 0
    end: int | None = None
    codec: str = "h264"
    crf: int | None = None
    overwrite: bool = False
    resume: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Summary:
    """What a finished run wrote; ``rendered`` frames were colorized by this run."""

    output: Path
    frames: int
    rendered: int
    seconds: float
    backend: str
    scenes: int
    info: VideoInfo
    pix_fmt: str
    codec: str

    def line(self) -> str:
        rate = f"{self.rendered / self.seconds:.2f}" if self.seconds > 0 else "-"
        audio = f", {len(self.info.audio)} audio stream(s) copied" if self.info.audio else ""
        return (f"wrote {self.output} ({self.frames} frames, {self.info.width}x{self.info.height} "
                f"{self.pix_fmt}, {self.codec}{audio}) with backend {self.backend} in {self.scenes} "
                f"scene(s); colorized {self.rendered} frames in {_clock(self.seconds)} ({rate} frames/s)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "colorize", help="colorize a video file from colour reference images",
        description="Colorize a black-and-white video (any file FFmpeg reads) with vsexcolor.colorize, "
                    "encode it with H.264, H.265 or FFV1 and copy its audio. Timestamps are kept, so a "
                    "variable frame rate stays as it is. Finished scenes are kept in OUTPUT.parts/ "
                    "while it runs: after Ctrl-C or a crash, run the same command with --resume.")
    parser.add_argument("input", type=Path, help="the black-and-white video")
    refs = parser.add_argument_group("references (at least one of them)")
    refs.add_argument("--ref", type=Path, metavar="IMAGE",
                      help="colour reference image for the whole clip (until the first --ref-at)")
    refs.add_argument("--ref-at", type=_keyframe, action="append", default=[], metavar="FRAME=IMAGE",
                      help="a reference in force from frame FRAME on; repeat for more")
    refs.add_argument("--propagate", action="store_true",
                      help="the authors' propagation mode: each reference is the first frame in colour; "
                           "without references, the input's own colour first frames of each scene are")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="output file; its extension picks the container (default: INPUT.colorized.mkv "
                             "beside the input)")
    model = parser.add_argument_group("colorization (as vsexcolor.colorize)")
    model.add_argument("--backend", choices=("auto", "devc", "propagate"), default="auto",
                       help="devc: the authors' networks (needs their weights); propagate: weight-free; "
                            "auto (default): devc when its weights are found")
    model.add_argument("--weights", type=Path, metavar="PATH",
                       help="DEVC checkpoint zip or folder (default: the model folder)")
    model.add_argument("--size", type=_pixels, metavar="PIXELS",
                       help=f"internal resolution as a pixel count or WxH (default 384x216 = {DEFAULT_PIXELS}); "
                            "larger is finer and slower")
    model.add_argument("--preset", choices=tuple(PRESETS), default="default",
                       help="default, or official: the authors' settings (saturation 1.25)")
    model.add_argument("--saturation", type=float, metavar="F", help="factor on the predicted colour, 0..4")
    model.add_argument("--smooth", type=float, metavar="L", help="edge-aware smoothing strength, 0 (off)..10000")
    model.add_argument("--scene-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="T",
                       help=f"scene-cut detector threshold 0..1; lower finds more cuts "
                            f"(default {DEFAULT_THRESHOLD})")
    model.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu or cuda[:N]")
    out = parser.add_argument_group("output")
    out.add_argument("--start", type=int, default=0, metavar="N", help="first frame to write (default 0)")
    out.add_argument("--end", type=int, metavar="M",
                     help="last frame to write, inclusive like vspipe's (default: the last); frames of a "
                          "range come out exactly as in a run over the whole file, so those from the scene "
                          "start up to N are computed too")
    out.add_argument("--codec", choices=tuple(CODECS), default="h264",
                     help="h264 (default), h265, or ffv1 (lossless, for archiving)")
    out.add_argument("--crf", type=int, metavar="N",
                     help="quality of h264/h265, 0 (best)..51 (defaults: 18 / 20)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (once the new one is complete) or work folder")
    out.add_argument("--resume", action="store_true",
                     help="continue an interrupted run of the same command from its last finished scene")
    parser.set_defaults(func=run)


def _keyframe(text: str) -> tuple[int, Path]:
    frame, sep, image = text.partition("=")
    if not sep or not frame.strip().isdigit() or not image:
        raise argparse.ArgumentTypeError(f"expected FRAME=IMAGE (e.g. 120=still.png), got {text!r}")
    return int(frame), Path(image)


def _pixels(text: str) -> int:
    width, sep, height = text.lower().partition("x")
    try:
        return int(width) * int(height) if sep else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count or WxH (e.g. 384x216), got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    refs = dict(args.ref_at)
    if len(refs) < len(args.ref_at):
        raise CommandError("two --ref-at options name the same frame")
    if args.ref is not None:
        if 0 in refs:
            raise CommandError("--ref and --ref-at 0=... both give frame 0's reference; keep one")
        refs[0] = args.ref
    output = args.output or args.input.with_name(args.input.stem + ".colorized.mkv")
    job = Job(input=args.input, output=output, refs=refs, propagate=args.propagate, backend=args.backend,
              weights=args.weights, pixels=args.size, preset=args.preset, saturation=args.saturation,
              smooth=args.smooth, scene_threshold=args.scene_threshold, device=args.device, start=args.start,
              end=args.end, codec=args.codec, crf=args.crf, overwrite=args.overwrite, resume=args.resume)
    print(f"vsexcolor colorize: {render(job).line()}", file=sys.stderr)
    return 0


def render(job: Job) -> Summary:
    """Run ``job``: check everything, colorize the missing scenes, write the output.

    Raises:
        CommandError: anything the user can fix; nothing is written then, except the
            finished scenes of a run that failed midway (kept for ``--resume``).
    """
    plan = _plan(job)
    _notes(plan.info)
    work = _WorkFolder(job.output)
    done = work.open(_settings(job, plan.info), resume=job.resume, overwrite=job.overwrite, first=job.start)
    began, todo = time.monotonic(), job.start if not done else done[-1][1] + 1
    if todo <= plan.last:
        backend = _prop_str(plan.clip.get_frame(todo).props[PROP_BACKEND])
        work.settle_backend(backend)
        done += _render_scenes(job, plan, work, todo)
    else:
        backend = work.backend()
    complete = work.folder / f"complete{job.output.suffix}"
    try:
        concatenate([path for _, _, path in done], complete, plan.info, job.start, plan.last)
    except VideoError as e:
        complete.unlink(missing_ok=True)
        raise CommandError(f"{e}; the colorized scenes are kept in {work.folder}") from None
    os.replace(complete, job.output)
    shutil.rmtree(work.folder)
    return Summary(output=job.output, frames=plan.last - job.start + 1, rendered=max(0, plan.last - todo + 1),
                   seconds=time.monotonic() - began, backend=backend, scenes=len(done), info=plan.info,
                   pix_fmt=plan.pix_fmt, codec=job.codec if plan.crf is None else f"{job.codec} crf {plan.crf}")


@dataclass(frozen=True)
class _Plan:
    """A checked job: the input, the clip to encode in ``pix_fmt``, the last frame to write."""

    info: VideoInfo
    clip: vs.VideoNode
    pix_fmt: str
    crf: int | None
    last: int


def _plan(job: Job) -> _Plan:
    """Check everything that can be checked before colorizing; writes nothing.

    The cheap checks come first, so that a typo is reported at once, not after the input
    has been read through.
    """
    codec = CODECS[job.codec]
    crf = _crf(job)
    try:
        check_input(job.input)
        _check_output_path(job)
        if not job.refs and not job.propagate:
            raise CommandError("give a colour reference: --ref IMAGE, --ref-at FRAME=IMAGE, or --propagate "
                               "to take the colour first frames of the input itself")
        images = {frame: read_image(path) for frame, path in sorted(job.refs.items())}
        info = probe(job.input, job.progress)
        last = info.num_frames - 1 if job.end is None else job.end
        if not 0 <= job.start <= last < info.num_frames:
            raise CommandError(f"--start and --end must satisfy 0 <= start <= end <= {info.num_frames - 1} "
                               f"(the input has {info.num_frames} frames), got {job.start} and {last}")
        if beyond := [k for k in job.refs if k >= info.num_frames]:
            raise CommandError(f"--ref-at frame {beyond[0]} is past the input's last frame, "
                               f"{info.num_frames - 1}")
        clip, pix_fmt = encodable(_colorized(job, info, images), codec)
        check_output(job.output, codec, crf, clip, pix_fmt, info)
    except (VideoError, ReferenceError) as e:
        raise CommandError(str(e)) from None
    return _Plan(info, clip, pix_fmt, crf, last)


def _crf(job: Job) -> int | None:
    default = CODECS[job.codec].crf
    if job.crf is None:
        return default
    if default is None:
        raise CommandError(f"--crf does not apply to {job.codec}, which is lossless")
    if not 0 <= job.crf <= 51:
        raise CommandError(f"--crf must be in 0..51, got {job.crf}")
    return job.crf


def _check_output_path(job: Job) -> None:
    out = job.output
    if not out.parent.is_dir():
        raise CommandError(f"the output folder {str(out.parent)!r} does not exist")
    if out.exists() and out.resolve() == job.input.resolve():
        raise CommandError("the output would replace the input; choose another -o")
    if out.is_dir():
        raise CommandError(f"the output {str(out)!r} is a folder")
    if out.exists() and not job.overwrite:
        raise CommandError(f"{str(out)!r} exists; add --overwrite to replace it")


def _colorized(job: Job, info: VideoInfo, images: Mapping[int, np.ndarray]) -> vs.VideoNode:
    """vsexcolor.colorize on the file, its warnings (e.g. the backend fallback) as notes."""
    ref = None if not images else images[0] if list(images) == [0] else dict(images)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clip = colorize(open_clip(info), ref, backend=job.backend, weights=job.weights,
                            propagate=job.propagate, preset=job.preset, saturation=job.saturation,
                            smooth=job.smooth, pixels=job.pixels, scene_threshold=job.scene_threshold,
                            device=job.device)
        except vs.Error as e:
            raise CommandError(str(e).removeprefix("colorize: ")) from None
    for warning in caught:
        _note(str(warning.message).removeprefix("vsexcolor: "))
    return clip


def _note(text: str) -> None:
    print(f"vsexcolor colorize: note: {text}", file=sys.stderr)


def _notes(info: VideoInfo) -> None:
    if info.retimed:
        _note(f"the input's timestamps are missing or out of order; frames are timed at {float(info.fps):g} fps")
    elif info.variable_rate:
        _note("variable frame rate: every frame keeps its timestamp")
    if info.interlaced:
        _note("the input is interlaced and is colorized frame by frame; deinterlace it first in a .vpy "
             "(see examples/restore.vpy) for better results")


def _settings(job: Job, info: VideoInfo) -> dict:
    """Everything that shapes the output: a resume must match it exactly."""
    stat = job.input.stat()
    return {
        "vsexcolor": __version__,
        "input": {"path": str(job.input.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "frames": info.num_frames},
        "references": {str(k): hashlib.sha256(p.read_bytes()).hexdigest() for k, p in sorted(job.refs.items())},
        "propagate": job.propagate,
        "backend": job.backend,
        "weights": None if job.weights is None else str(job.weights.resolve()),
        "pixels": job.pixels,
        "preset": job.preset,
        "saturation": job.saturation,
        "smooth": job.smooth,
        "scene_threshold": job.scene_threshold,
        "start": job.start,
        "end": job.end,
        "codec": job.codec,
        "crf": job.crf,
    }


class _WorkFolder:
    """``OUTPUT.parts/``: the manifest and the finished scenes ``frames-FIRST-LAST.mp4``."""

    def __init__(self, output: Path) -> None:
        self.folder = output.with_name(output.name + ".parts")
        self.manifest = self.folder / "manifest.json"
        self.settings: dict = {}

    def open(self, settings: dict, *, resume: bool, overwrite: bool, first: int) -> list[tuple[int, int, Path]]:
        """Start or take up the work; returns the finished scenes, in order from ``first``."""
        self.settings = settings
        if self.folder.exists():
            if not self.manifest.is_file():
                raise CommandError(f"{self.folder} exists but is no vsexcolor work folder; move it away")
            if resume:
                return self._resume(first)
            if not overwrite:
                raise CommandError(f"{self.folder} holds an unfinished run; add --resume to continue it, "
                                   "or --overwrite to start over")
            shutil.rmtree(self.folder)
        elif resume:
            _note("nothing to resume; starting from the beginning")
        self.folder.mkdir()
        self._write()
        return []

    def _resume(self, first: int) -> list[tuple[int, int, Path]]:
        try:
            saved = json.loads(self.manifest.read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"cannot read {self.manifest}: {e}") from None
        changed = sorted(k for k in (self.settings.keys() | saved.keys()) - {"backend_used"}
                         if saved.get(k) != self.settings.get(k))
        if changed:
            raise CommandError(f"{self.folder} was started with other settings (changed: {', '.join(changed)}); "
                               "run the original command with --resume, or add --overwrite to start over")
        self.settings = saved
        parts = sorted((int(m[1]), int(m[2]), p) for p in self.folder.iterdir() if (m := _PART.fullmatch(p.name)))
        done, expect = [], first
        for a, b, path in parts:
            if a != expect:
                break
            done.append((a, b, path))
            expect = b + 1
        for path in self.folder.iterdir():  # half-written files and anything past a gap
            if path != self.manifest and path not in {p for _, _, p in done}:
                path.unlink()
        return done

    def settle_backend(self, backend: str) -> None:
        """Record the backend actually used, or refuse to mix two in one output."""
        before = self.settings.get("backend_used")
        if before not in (None, backend):
            raise CommandError(f"{self.folder} was started with backend {before}, but {backend} would run now "
                               "(have the weights changed?); add --overwrite to start over")
        self.settings["backend_used"] = backend
        self._write()

    def backend(self) -> str:
        return self.settings.get("backend_used", "?")

    def _write(self) -> None:
        temporary = self.manifest.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.settings, indent=2, sort_keys=True))
        os.replace(temporary, self.manifest)

    def part(self, first: int, last: int) -> Path:
        return self.folder / f"frames-{first:08d}-{last:08d}.mp4"


def _render_scenes(job: Job, plan: _Plan, work: _WorkFolder, todo: int) -> list[tuple[int, int, Path]]:
    """Colorize frames ``todo``..``plan.last``, one finished file per scene."""
    codec, last = CODECS[job.codec], plan.last
    incomplete = work.folder / "incomplete.mp4"
    written: list[tuple[int, int, Path]] = []
    encoder: Encoder | None = None
    scene = part_first = -1
    n = todo
    bar = tqdm(total=last - job.start + 1, initial=todo - job.start, desc="colorize", unit="frame",
               disable=not job.progress, dynamic_ncols=True)

    def finish_part(final: int) -> None:
        nonlocal encoder
        encoder.close()
        encoder = None
        path = work.part(part_first, final)
        os.replace(incomplete, path)
        written.append((part_first, final, path))

    hint = f"the finished scenes are kept in {work.folder}: run the same command with --resume to continue"
    try:
        try:
            for n, frame in enumerate(plan.clip[todo:last + 1].frames(prefetch=_PREFETCH, close=True), todo):
                if frame.props[PROP_SCENE_START] != scene:
                    if encoder is not None:
                        finish_part(n - 1)
                    scene, part_first = frame.props[PROP_SCENE_START], n
                    encoder = Encoder(incomplete, codec, plan.crf, plan.pix_fmt, plan.info, job.start, frame)
                encoder.write(frame, n)
                bar.update()
            finish_part(last)
        finally:
            bar.close()
            if encoder is not None:  # a scene cut short: its half-written file goes
                encoder.close(flush=False)
            incomplete.unlink(missing_ok=True)
    except KeyboardInterrupt:
        print(f"vsexcolor colorize: stopped at frame {n}; {hint}", file=sys.stderr)
        raise
    except (vs.Error, VideoError, av.FFmpegError) as e:
        raise CommandError(f"failed at frame {n}: {e}; {hint}") from None
    return written


def _prop_str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _clock(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"
