"""``vsexcolor colorize``: colorize a video file, scene by scene, resumably, here or on a farm.

The file is decoded and colorized with :func:`vsexcolor.colorize`; the work is cut into its
scenes (:mod:`vsexcolor.render.pipeline`), each of which depends on nothing before it, so a run
resumed at its unfinished scenes, or spread over a Ray cluster, writes exactly what an
uninterrupted run here would have. The output appears, by a rename, only once every scene
is done and joined with the audio.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import vapoursynth as vs
from tqdm import tqdm

from ..filter import shots
from ..filter import PRESETS, colorize
from ..filter.formats import colour_props
from ..filter.luma import Luma
from ..filter.ref_inputs import files_in, references
from ..render.pipeline import Render, RenderError
from ..filter.reference import ReferenceError, read_image
from ..filter.options import KEYFRAME_GAPS
from ..filter.resolution import DEFAULT_PIXELS, MAX_PIXELS
from ..filter.scenes import DEFAULT_THRESHOLD
from ..memory import map_large_allocations, release_garbage
from ..render.video import VideoError, VideoInfo, check_input, open_clip, probe
from ._direction import add_direction_option
from ._keyframe_gaps import add_keyframe_gap_options, keyframe_gaps
from ._errors import CommandError
from ._output import (Summary, add_output_options, check_cluster, check_output_path, check_range, crf,
                      run as run_render)


@dataclass(frozen=True)
class Job:
    """One ``vsexcolor colorize`` run; the fields are the command's options.

    ``refs``: {first frame: image} (the reference for frames before the first key is the
    first one); ``refs_dir``: a folder of references named by frame instead;
    ``start``/``end``: first and last frame written (inclusive, as vspipe's);
    ``keyframe_model``: a keyframe model's name or path (None: the preferred one present);
    ``pixels``: the internal area in pixels (None: the preset's); ``ray``: the cluster's
    address ("": $RAY_ADDRESS or a local Ray), None to render here; ``insecure_cluster``: use a
    cluster that requires no token on an address that is not loopback.
    """

    input: Path
    output: Path
    refs: Mapping[int, Path] = field(default_factory=dict)
    refs_dir: Path | None = None
    propagate: bool = False
    backend: str = "auto"
    weights: Path | None = None
    keyframe_model: str | None = None
    keyframe_pick: str = "sharpest"
    keyframe_gaps: tuple[float, float] | None = KEYFRAME_GAPS
    direction: str = "both"
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
    ray: str | None = None
    workers: int | None = None
    insecure_cluster: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ColorizeRecipe:
    """The colorized file as a clip, built alike on every machine (see :class:`~vsexcolor.render.pipeline.Recipe`)."""

    info: VideoInfo
    refs: tuple[tuple[int, Path], ...]
    options: tuple[tuple[str, object], ...]  # colorize's keyword arguments
    refs_dir: Path | None = None

    def build(self) -> vs.VideoNode:
        # Paths, not pictures: colorize reads each at the size it is used at.
        paths = dict(self.refs)
        if self.refs_dir:
            ref = self.refs_dir
        elif list(paths) == [0]:
            ref = paths[0]  # one reference, from frame 0: colorize's messages then call it "ref"
        else:
            ref = paths or None  # None: automatic keyframes, or --propagate from the input's own colour
        try:
            return colorize(open_clip(self.info), ref, **dict(self.options))
        except vs.Error as e:
            raise RenderError(str(e).removeprefix("colorize: ")) from None

    def paths(self) -> list[Path]:
        options = dict(self.options)
        files = [Path(p) for p in (options.get("weights"), options.get("keyframe_model"))
                 if p is not None and Path(p).exists()]
        return [self.info.path, *(path for _, path in self.refs), *(files_in(self.refs_dir) if self.refs_dir else []),
                *files]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "colorize", help="colorize a video file from colour reference images",
        description="Colorize a black-and-white video (any file FFmpeg reads) with vsexcolor.colorize, "
                    "encode it with H.264, H.265 or FFV1 and copy its audio. Timestamps are kept, so a "
                    "variable frame rate stays as it is. Finished scenes are kept in OUTPUT.parts/ "
                    "while it runs: after Ctrl-C or a crash, run the same command with --resume.")
    parser.add_argument("input", type=Path, help="the black-and-white video")
    refs = parser.add_argument_group(
        "references (none: each shot's sharpest opening frame is coloured by the keyframe model)")
    refs.add_argument("--ref", type=Path, metavar="IMAGE",
                      help="colour reference image for the whole clip (until the first --ref-at)")
    refs.add_argument("--ref-at", type=_keyframe, action="append", default=[], metavar="FRAME=IMAGE",
                      help="a reference in force from frame FRAME on; repeat for more")
    refs.add_argument("--refs", type=Path, metavar="DIR",
                      help="a folder of coloured frames named by their frame number (000123.png, as `vsexcolor "
                           "shots` exports them), each in force from its frame on: a keyframe where it is that "
                           "frame coloured, else an exemplar")
    refs.add_argument("--propagate", action="store_true",
                      help="the authors' propagation mode: each reference is the first frame in colour; "
                           "without references, the input's own colour first frames of each scene are")
    model = parser.add_argument_group("colorization (as vsexcolor.colorize)")
    model.add_argument("--backend", choices=("auto", "devc", "propagate"), default="auto",
                       help="devc: the authors' networks (needs their weights); propagate: weight-free; "
                            "auto (default): devc when its weights are found")
    model.add_argument("--weights", type=Path, metavar="PATH",
                       help="DEVC checkpoint zip or folder (default: the model folder)")
    model.add_argument("--keyframe-model", metavar="NAME|PATH",
                       help="image colorizer of the automatic keyframes of shots without a reference: "
                            "ddcolor_modelscope, ddcolor_artistic, ddcolor_paper, ddcolor_paper_tiny, a checkpoint's "
                            "path, or none (default: the first of those in the model folder; `vsexcolor download "
                            "ddcolor` fetches one)")
    model.add_argument("--keyframe-pick", choices=("sharpest", "first"), default="sharpest",
                       help="the frame of a shot its automatic keyframe colours: the sharpest of its first second "
                            "(default, as `vsexcolor shots` picks) or its first")
    add_keyframe_gap_options(model)
    add_direction_option(model)
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
    add_output_options(parser, "INPUT.colorized.mkv beside the input")
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
    if args.refs is not None and refs:
        raise CommandError("give either --refs DIR or --ref/--ref-at, not both")
    output = args.output or args.input.with_name(args.input.stem + ".colorized.mkv")
    job = Job(input=args.input, output=output, refs=refs, refs_dir=args.refs, propagate=args.propagate,
              backend=args.backend, keyframe_model=args.keyframe_model, keyframe_pick=args.keyframe_pick,
              keyframe_gaps=keyframe_gaps(args), direction=args.direction, weights=args.weights, pixels=args.size, preset=args.preset, saturation=args.saturation,
              smooth=args.smooth, scene_threshold=args.scene_threshold, device=args.device, start=args.start,
              end=args.end, codec=args.codec, crf=args.crf, overwrite=args.overwrite, resume=args.resume,
              ray=args.ray, workers=args.workers, insecure_cluster=args.insecure_cluster)
    print(f"vsexcolor colorize: {render(job).line()}", file=sys.stderr)
    return 0


def render(job: Job) -> Summary:
    """Run ``job``: check everything, colorize the missing scenes, write the output.

    Raises:
        CommandError: anything the user can fix; nothing is written then, except the
            finished scenes of a run that failed midway (kept for ``--resume``).
    """
    quality = crf(job.codec, job.crf)
    map_large_allocations()  # before the shots check reads the references (see its docstring)
    try:
        check_input(job.input)
        check_output_path(job.output, job.overwrite, job.input, codec=job.codec)
        keyframe_model = _keyframe_model(job)
        if job.refs_dir and not job.refs_dir.is_dir():
            raise CommandError(f"--refs {str(job.refs_dir)!r} is not a folder")
        for path in job.refs.values():
            read_image(path, MAX_PIXELS)  # that it decodes, at no more than an exemplar's cost
        cluster = check_cluster("colorize", job.ray, job.insecure_cluster)  # before a film is indexed
        info = probe(job.input, job.progress)
    except (VideoError, ReferenceError) as e:
        raise CommandError(str(e)) from None
    last = check_range(job.start, job.end, info.num_frames)
    if beyond := [k for k in job.refs if k >= info.num_frames]:
        raise CommandError(f"--ref-at frame {beyond[0]} is past the input's last frame, {info.num_frames - 1}")
    _notes(info)
    if job.refs_dir:
        _check_shots(job, info, keyframe_model)
        release_garbage()  # the check's clips, before the long render
    # Workers colour keyframes with this very file, whatever their own model folders hold;
    # every path is absolute, as the recipe is built on machines in other working folders.
    options = {"backend": job.backend, "weights": job.weights.absolute() if job.weights else None,
               "keyframe_model": str(keyframe_model.absolute()) if keyframe_model else "none",
               "keyframe_pick": job.keyframe_pick, "keyframe_gaps": job.keyframe_gaps, "direction": job.direction,
               "propagate": job.propagate,
               "preset": job.preset,
               "saturation": job.saturation, "smooth": job.smooth, "pixels": job.pixels,
               "scene_threshold": job.scene_threshold, "device": job.device}
    recipe = ColorizeRecipe(dataclasses.replace(info, path=info.path.absolute()),
                            tuple(sorted((k, p.absolute()) for k, p in job.refs.items())), tuple(options.items()),
                            job.refs_dir.resolve() if job.refs_dir else None)
    return run_render("colorize", Render(recipe, info, job.codec, quality, job.start, last), job.output,
                      _settings(job, info, keyframe_model), resume=job.resume, overwrite=job.overwrite, cluster=cluster,
                      workers=job.workers, progress=job.progress)


def _keyframe_model(job: Job) -> Path | None:
    """The keyframe model shots without a reference are coloured with, None if there is
    none; an error where there is none and no reference either, or where it does not load
    into DDColor (before anything is read)."""
    from ..weights.ddcolor import KeyframeModelError, NothingToColourFrom, check_keyframe_model, keyframe_model_for

    needed = not job.refs and not job.refs_dir and not job.propagate
    try:
        path = keyframe_model_for(job.keyframe_model, needed)
    except NothingToColourFrom:
        raise CommandError("--keyframe-model none leaves nothing to colour from: give a reference (--ref, "
                           "--ref-at or --refs) or --propagate") from None
    except KeyframeModelError as e:
        raise CommandError(f"no colour reference given and {e}" if needed else f"--keyframe-model: {e}") from None
    try:
        if path is not None:
            check_keyframe_model(path)
    except KeyframeModelError as e:
        raise CommandError(f"{'--keyframe-model' if job.keyframe_model else 'the keyframe model'}: {e}") from None
    return path


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


def _check_shots(job: Job, info: VideoInfo, keyframe_model: Path | None) -> None:
    """Before the long run, with references from a folder: say which shots have none of their
    own, and which references look misnumbered."""
    clip = open_clip(info)
    with tqdm(total=clip.num_frames, desc="finding shots", unit="frame", leave=False,
              disable=not job.progress) as bar:
        found = shots.find(clip, job.scene_threshold, bar.update, job.keyframe_pick)
    # The planning clip that found them, collected before the film is read again: left to
    # Python's collector, the check's clips (the film's source with its decoder threads and
    # cache, its lightness) outlived the check, held by nothing in Python, through the whole
    # render: 330 MiB and 12 threads on a 300-shot film (benchmarks/shots_memory.py).
    release_garbage()
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    try:
        keyed = references(clip, job.refs_dir, job.propagate, [luma], report=False)
    except vs.Error as e:
        raise CommandError(str(e).removeprefix("colorize: ")) from None

    def at(n: int) -> str:
        return shots.timecode(float(info.seconds(n) - info.seconds(0)))

    def listed(spans: list[shots.Shot]) -> str:
        more = " ..." if len(spans) > 12 else ""
        return ", ".join(f"{s.first}-{s.last} ({at(s.first)})" for s in spans[:12]) + more

    bare = [s for s in found if not any(s.first <= r.start <= s.last for r in keyed)]
    if bare and keyframe_model is not None:
        _note(f"{len(bare)} of {len(found)} shots have no reference of their own; their {job.keyframe_pick} "
              f"opening frames are coloured by {keyframe_model.name} as keyframes: frames {listed(bare)}")
    elif bare:
        first = keyed[0].start
        before, after = [s for s in bare if s.first < first], [s for s in bare if s.first > first]
        how = [f"{len(before)} before the first reference take it ({listed(before)})" if before else "",
               f"{len(after)} take the reference before them ({listed(after)})" if after else ""]
        _note(f"{len(bare)} of {len(found)} shots have no reference of their own (and no keyframe model to colour "
              f"them: `vsexcolor download ddcolor`): " + "; ".join(h for h in how if h))
    for ref, best in shots.misnumbered(luma, keyed, found, job.scene_threshold):
        _note(f"{ref.name} looks like neither frame {ref.start} nor its shot; it looks most like the shot from "
              f"frame {best} ({at(best)}): is it misnumbered?")


def _reference_hashes(job: Job) -> dict[str, str]:
    """SHA-256 of each reference file, by frame (``--ref``, ``--ref-at``) or by name (the
    references of ``--refs``: the contact sheet and the like beside them change nothing)."""
    if job.refs_dir:
        files = {str(p.relative_to(job.refs_dir)): p for p in files_in(job.refs_dir)}
    else:
        files = {str(k): p for k, p in sorted(job.refs.items())}
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in files.items()}


def _settings(job: Job, info: VideoInfo, keyframe_model: Path | None) -> dict:
    """What shapes the output besides the encoder and the range: a resume must match it."""
    stat = job.input.stat()
    return {
        "input": {"path": str(job.input.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "frames": info.num_frames},
        "references": _reference_hashes(job),
        "propagate": job.propagate,
        "backend": job.backend,
        "weights": None if job.weights is None else str(job.weights.resolve()),
        "keyframe_model": None if keyframe_model is None else str(keyframe_model.resolve()),
        "keyframe_pick": job.keyframe_pick,
        "keyframe_gaps": None if job.keyframe_gaps is None else list(job.keyframe_gaps),
        "direction": job.direction,
        "pixels": job.pixels,
        "preset": job.preset,
        "saturation": job.saturation,
        "smooth": job.smooth,
        "scene_threshold": job.scene_threshold,
    }
