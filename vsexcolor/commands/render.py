"""``vsexcolor render``: encode a VapourSynth script's output, resumably, here or on a farm.

A restorer's real job is a ``.vpy`` chain (source, deinterlace, denoise, colorize). This
encodes output 0 of such a script as ``vspipe SCRIPT.vpy`` gives it, with the encoders,
parts, ``--resume`` and ``--ray`` of ``vsexcolor colorize``, and the audio of ``--audio``.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import vapoursynth as vs

from ..filter.ref_inputs import files_in
from ..render.environment import file_fingerprint, held_open
from ..filter import recording
from ..render.pipeline import Render, RenderError, one_line
from ..render.video import VideoError, check_input, clip_info
from ._errors import CommandError
from ._output import add_output_options, check_cluster, check_output_path, check_range, crf, run as run_render


@dataclass(frozen=True)
class ScriptRecipe:
    """A ``.vpy`` script's output 0, built by running the script as vspipe does: ``args`` are
    its globals (as ``vspipe -a KEY=VALUE`` sets them), ``__name__`` is ``__vapoursynth__``,
    in the working folder ``cwd`` (that of the command, on every machine: relative paths in
    the script and its arguments mean the same everywhere). ``reads``: the files it was seen
    to read (:func:`files_read`)."""

    script: Path
    args: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    reads: tuple[Path, ...] = ()

    def build(self) -> vs.VideoNode:
        if self.cwd and os.getcwd() != self.cwd:
            try:
                os.chdir(self.cwd)
            except OSError as e:
                raise RenderError(f"cannot work in {self.cwd} ({e.strerror}), where the script was started") from None
        vs.clear_outputs()
        try:
            runpy.run_path(str(self.script), init_globals=dict(self.args), run_name="__vapoursynth__")
        except SystemExit as e:
            raise RenderError(f"{self.script} exited ({e.code}) while it was evaluated") from None
        except Exception as e:  # a script may raise anything; its first line says what
            lines = str(e).strip().splitlines()
            raise RenderError(f"{self.script} failed: {type(e).__name__}: {lines[0] if lines else ''}") from None
        outputs = dict(vs.get_outputs())
        vs.clear_outputs()
        output = outputs.get(0)
        if not isinstance(output, vs.VideoOutputTuple):
            raise RenderError(f"{self.script} sets no video output 0 (end it with clip.set_output())")
        return output.clip

    def paths(self) -> list[Path]:
        return [self.script, *self.reads]


def files_read(recipe: ScriptRecipe, held: set[Path]) -> tuple[Path, ...]:
    """The files a script reads, as far as can be seen from here: its arguments that name
    files or folders, and the files its clip holds open once built (``held``: those opened
    while it was built; its sources keep theirs open), but not the script itself, nor files
    of Python's, nor of the system's."""
    args = [Path(value).absolute() for _, value in recipe.args if value and Path(value).exists()]
    ours = (Path(sys.prefix), Path(sys.base_prefix), Path("/dev"), Path("/proc"), Path("/sys"))
    return tuple(sorted({*args, *(p for p in held if p != recipe.script and not any(p.is_relative_to(o) for o in ours))}))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help="encode a VapourSynth script's output (e.g. a restoration chain ending in colorize)",
        description="Encode output 0 of a .vpy script, as vspipe gives it, with H.264, H.265 or FFV1, in parts "
                    "kept in OUTPUT.parts/ while it runs (a part is a scene where the output comes from "
                    "vsexcolor.colorize): after Ctrl-C or a crash, run the same command with --resume.")
    parser.add_argument("script", type=Path, help="the .vpy script")
    add_script_arguments(parser)
    parser.add_argument("--audio", type=Path, metavar="FILE", help="copy the audio streams of FILE (e.g. the source)")
    add_output_options(parser, "SCRIPT.mkv beside the script", chunk=True)
    parser.set_defaults(func=run)


def add_script_arguments(parser: argparse.ArgumentParser) -> None:
    """``-a KEY=VALUE``, as vspipe's; :func:`script_recipe` takes what they give."""
    parser.add_argument("-a", "--arg", action="append", default=[], type=_arg, metavar="KEY=VALUE",
                        help="a global variable of the script, as vspipe's -a (repeat for more)")


def _arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. source=reel1.mkv), got {text!r}")
    return key, value


def script_recipe(script: Path, pairs: list[tuple[str, str]]) -> ScriptRecipe:
    """The recipe of ``script`` run with the ``-a`` values ``pairs``, in this working folder."""
    names = [key for key, _ in pairs]
    if len(set(names)) < len(names):
        raise CommandError("two -a options set the same variable")
    check_input(script)
    return ScriptRecipe(script.resolve(), tuple(sorted(pairs)), cwd=os.getcwd())


def run(args: argparse.Namespace) -> int:
    script: Path = args.script
    output = args.output or script.with_name(script.stem + ".mkv")
    quality = crf(args.codec, args.crf)
    if args.chunk < 1:
        raise CommandError(f"--chunk must be at least 1, got {args.chunk}")
    try:
        recipe = script_recipe(script, args.arg)
        check_output_path(output, args.overwrite, script, *([args.audio] if args.audio else []),
                          codec=args.codec)
        # Clips an earlier build in this process left to the garbage collector (a failed
        # run's) hold files open: freed while this script builds, their descriptors would
        # be taken again by its files, which would then pass for held before.
        gc.collect()
        cluster = check_cluster("render", args.ray, args.insecure_cluster)  # before the script opens its sources
        before = held_open()
        with recording(planning=True):  # colorize's planning clip: a frame costs no network
            clip = recipe.build()
        try:
            clip.get_frame(0)  # sources open their files when first asked for a frame
        except vs.Error as e:
            raise RenderError(f"{script} fails at its first frame: {one_line(e)}") from None
        recipe = dataclasses.replace(recipe, reads=files_read(recipe, {p for _, p in held_open() - before}))
        info = clip_info(clip, recipe.script, args.audio.resolve() if args.audio else None)
    except (VideoError, RenderError) as e:
        raise CommandError(str(e)) from None
    last = check_range(args.start, args.end, clip.num_frames)
    del clip  # each render builds its own
    render = Render(recipe, info, args.codec, quality, args.start, last, chunk=args.chunk)
    summary = run_render("render", render, output, _settings(recipe, args.audio), resume=args.resume,
                         overwrite=args.overwrite, cluster=cluster, workers=args.workers)
    print(f"vsexcolor render: {summary.line()}", file=sys.stderr)
    return 0


def _settings(recipe: ScriptRecipe, audio: Path | None) -> dict:
    """What shapes the output besides the encoder and the range: a resume must match it,
    the files the script reads among it (:func:`files_read`)."""
    files = [f for path in recipe.reads for f in files_in(path)]
    return {
        "script": {"path": str(recipe.script), "sha256": hashlib.sha256(recipe.script.read_bytes()).hexdigest()},
        "args": dict(recipe.args),
        "reads": {str(path): file_fingerprint(path) for path in files},
        "audio": None if audio is None else {"path": str(audio.resolve()), "size": audio.stat().st_size,
                                             "mtime_ns": audio.stat().st_mtime_ns},
    }
