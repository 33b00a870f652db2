"""``vsexcolor shots``: find a film's shots and export the frames of each to colour.

The first step of the per-shot workflow: colour the exported frames (by hand, or with
``--colorize`` as colorize's automatic keyframes, to check or retouch), then
``vsexcolor colorize INPUT --refs DIR`` the film.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import vapoursynth as vs
from tqdm import tqdm

from ..filter import shots as shots_mod
from ..weights.checkpoints import default_model_dir
from ..devices import parse_device
from ..filter import calls
from ..filter.formats import colour_props
from ..filter.ref_inputs import GRAY_FOLDER, files_in
from ..weights.ddcolor import DEFAULT_KEYFRAME_MODEL, KEYFRAME_MODELS, KeyframeModelError, find_keyframe_model
from ..filter.keyframes import KeyframeColorizer, load_colorizer
from ..filter.luma import Luma
from ..filter.scenes import DEFAULT_THRESHOLD
from ..render.pipeline import RenderError
from ..render.video import VideoError, VideoInfo, clip_info, open_clip, probe
from ..render.workfolder import write_durably
from ._errors import CommandError
from ._keyframe_gaps import add_keyframe_gap_options, keyframe_gaps
from ._output import check_output_folder
from .render import add_script_arguments, script_recipe

SHEET = "contact-sheet.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shots", help="find the shots of a film and export the frames of each to colour",
        description="Find the shots with colorize's own cut detector and write, into DIR, the gray frames to "
                    "colour of each (full size, lossless, named by their frame numbers: 000123.png): the frame "
                    "picked, and in a long shot more where the picture has moved on from the last (see "
                    "--min-gap); shots.json, shots.csv and contact-sheet.png. Colour the frames you want, then: "
                    "vsexcolor colorize INPUT --refs DIR "
                    "(or, for a script, pass DIR as its colorize call's ref). "
                    "With --colorize the frames are written in colour, as colorize's automatic keyframes, "
                    "and the gray ones in DIR/gray.")
    parser.add_argument("input", type=Path,
                        help="the black-and-white video, or a .vpy script: the clip its vsexcolor.colorize call "
                             "colours (its output where it calls none), so the frames are numbered and sized as "
                             "colorize sees them")
    add_script_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--pick", choices=shots_mod.PICKS, default=None,
                        help="which frame of a shot: its first, its middle, or the sharpest of its first second, "
                             "which avoids fades and motion blur; first and sharpest are the frame colorize "
                             "colours as the shot's automatic keyframe with that --keyframe-pick (default: a "
                             "script's colorize call's keyframe_pick, else sharpest)")
    add_keyframe_gap_options(parser)
    parser.add_argument("--scene-threshold", type=float, default=None, metavar="T",
                        help=f"as colorize's: 0..1, lower finds more cuts (default: a script's colorize call's, "
                             f"else {DEFAULT_THRESHOLD})")
    parser.add_argument("--colorize", action="store_true",
                        help="write the frames coloured by the keyframe model (DDColor), as colorize colours "
                             "shots without a reference, the gray ones in DIR/gray: check or retouch them")
    parser.add_argument("--keyframe-model", metavar="NAME|PATH", default=None,
                        help="with --colorize: a released DDColor model's name or a checkpoint's path "
                             "(default: the first present in the model folder; `vsexcolor download ddcolor`)")
    parser.add_argument("--device", metavar="D", default=None,
                        help="with --colorize: auto (default), cpu or cuda[:N]")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in DIR: the frames its shots.json lists (and their gray "
                             "copies) that this one does not write again are removed; a folder holding other "
                             "pictures is refused")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder: Path = args.output
    if args.scene_threshold is not None and not 0.0 <= args.scene_threshold <= 1.0:
        raise CommandError(f"--scene-threshold must be in 0..1, got {args.scene_threshold}")
    keyframe_gaps(args)  # checked before the film is read
    if not args.colorize and (args.keyframe_model is not None or args.device is not None):
        raise CommandError("--keyframe-model and --device are for colouring the frames: add --colorize")
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is a file, not a folder")
    check_output_folder(folder if folder.is_dir() else folder.parent, "folder")
    earlier = _earlier_export(folder)
    # Before the film is read: without a model nothing is worth finding.
    model, colorizer = _colorizer(args.keyframe_model, args.device or "auto") if args.colorize else (None, None)
    film = read_film(args)
    clip, info, threshold = film.clip, film.info, film.scene_threshold
    with tqdm(total=clip.num_frames, desc="finding shots", unit="frame", leave=False) as bar:
        picked = shots_mod.find(clip, threshold, bar.update, film.pick, film.scene_clip, film.scenes, film.gaps)
    names = [f"{k:06d}.png" for shot in picked for k in shot.keyframes]
    ours = [*names, *([f"{GRAY_FOLDER}/{n}" for n in names] if colorizer else []), "shots.json", "shots.csv", SHEET]
    if clashes := [n for n in ours if (folder / n).exists()] if folder.exists() else []:
        if not args.overwrite:
            raise CommandError(f"{folder} already holds {', '.join(clashes[:3])}{' ...' if len(clashes) > 3 else ''};"
                               " add --overwrite to replace them, or choose another folder")
    folder.mkdir(exist_ok=True)
    _remove(folder, earlier - set(ours))

    def start_of(n: int) -> str:
        return shots_mod.timecode(float(info.seconds(n) - info.seconds(0)))

    rows = [{"shot": s.number, "first": s.first, "last": s.last, "frame": s.pick, "start": start_of(s.first),
             "duration_s": round(float(_end(info, s.last) - info.seconds(s.first)), 3),
             "keyframes": " ".join(map(str, s.keyframes))} for s in picked]
    # shots.json first: an export cut short is then an earlier export of its own frames.
    write_durably(folder / "shots.json", json.dumps(
        {"input": str(args.input.resolve()), **({"arguments": dict(args.arg)} if args.arg else {}),
         "frames": info.num_frames, "fps": float(info.fps), "scene_threshold": threshold, "pick": film.pick,
         "keyframe_gaps_s": None if film.gaps is None or film.pick == "middle" else list(film.gaps),
         "shots": [{**row, "keyframes": list(s.keyframes)} for row, s in zip(rows, picked)]}, indent=2).encode())
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_durably(folder / "shots.csv", table.getvalue().encode())
    thumbs = _write_frames(clip, picked, names, folder, colorizer)
    _, sheet = cv2.imencode(".png", shots_mod.contact_sheet(picked, thumbs, start_of))
    write_durably(folder / SHEET, sheet.tobytes())
    mean = sum(s.length for s in picked) / len(picked)
    count = f"{len(picked)} shot{'' if len(picked) == 1 else 's'}"
    frames = (f"{len(names)} frames coloured by {model.name} (the gray ones in {GRAY_FOLDER}/)" if model
              else f"{len(names)} frames to colour")
    print(f"vsexcolor shots: {count}, {mean / float(info.fps):.1f} s ({mean:.0f} frames) long on average; wrote "
          f"{frames}, shots.json, shots.csv and {SHEET} to {folder}", file=sys.stderr)
    return 0


def _earlier_export(folder: Path) -> set[str]:
    """The frames an earlier export wrote into ``folder`` (as its ``shots.json`` lists them,
    and their gray copies), relative to it; an error where the folder holds other files that
    colorize --refs would read, since an export beside them would be mixed with them."""
    try:
        listed = {f"{int(k):06d}.png" for row in json.loads((folder / "shots.json").read_bytes())["shots"]
                  for k in row.get("keyframes", [row["frame"]])}
    except (OSError, ValueError, KeyError, TypeError):  # none there, or not ours: it lists nothing
        listed = set()
    if folder.is_dir() and (others := [str(p.relative_to(folder)) for p in files_in(folder)
                                       if str(p.relative_to(folder)) not in listed]):
        raise CommandError(f"{folder} holds {_listing(others)}, which no export listed in its shots.json and "
                           f"colorize --refs {folder} would take as references too: move "
                           f"{'it' if len(others) == 1 else 'them'} out, or choose another folder")
    return listed | {f"{GRAY_FOLDER}/{name}" for name in listed}


def _listing(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``, ``a, b, c and 2 more``."""
    if len(names) > 4:
        return ", ".join(names[:3]) + f" and {len(names) - 3} more"
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def _remove(folder: Path, stale: set[str]) -> None:
    """Remove the files ``stale`` (relative to ``folder``) of an earlier export, and its gray
    folder where that leaves it empty."""
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    gray = folder / GRAY_FOLDER
    if gray.is_dir() and not any(gray.iterdir()):
        gray.rmdir()


class Film(NamedTuple):
    """The clip whose shots to find, its timing, and how its shots and frames are found
    (``scene_threshold``, ``scene_clip``, ``scenes`` as colorize's; ``pick`` as ``--pick``)."""

    clip: vs.VideoNode
    info: VideoInfo
    scene_threshold: float
    scene_clip: vs.VideoNode | None
    scenes: bool
    pick: str
    gaps: tuple[float, float] | None


def read_film(args: argparse.Namespace) -> Film:
    """A file's frames, or the clip a script's colorize call colours, its shots found and
    picked as that call finds and picks them (a script that calls none: its output)."""
    threshold = DEFAULT_THRESHOLD if args.scene_threshold is None else args.scene_threshold
    pick = args.pick or "sharpest"
    try:
        if args.input.suffix.lower() != ".vpy":
            if args.arg:
                raise CommandError(f"-a sets a variable of a .vpy script, and {args.input} is not one")
            info = probe(args.input)
            return Film(open_clip(info), info, threshold, None, True, pick, keyframe_gaps(args))
        recipe = script_recipe(args.input, args.arg)
        with calls() as made:
            output = recipe.build()
        if len(made) > 1:
            raise CommandError(f"{args.input} calls vsexcolor.colorize {len(made)} times, and shots finds the shots "
                               "of one clip: export them from a script that calls it once")
        if not made:
            return Film(output, clip_info(output, recipe.script), threshold, None, True, pick, keyframe_gaps(args))
        call = made[0]
        if args.scene_threshold is not None and args.scene_threshold != call.scene_threshold:
            raise CommandError(f"--scene-threshold {args.scene_threshold:g} differs from the {call.scene_threshold:g} "
                               f"of {args.input}'s colorize call: leave it out, so that the shots are its")
        if args.pick in ("first", "sharpest") and args.pick != call.keyframe_pick:
            raise CommandError(f"--pick {args.pick} differs from the keyframe_pick {call.keyframe_pick!r} of "
                               f"{args.input}'s colorize call: leave it out, so that the frames are those it colours")
        gaps = keyframe_gaps(args, call.keyframe_gaps)
        if gaps != call.keyframe_gaps:
            raise CommandError(f"--min-gap, --max-gap or --one-keyframe differ from the keyframe_gaps "
                               f"{call.keyframe_gaps!r} of {args.input}'s colorize call: leave them out, so that the "
                               "frames are those it colours")
        return Film(call.clip, clip_info(call.clip, recipe.script), call.scene_threshold, call.scene_clip,
                    call.scenes, args.pick or call.keyframe_pick, gaps)
    except (VideoError, RenderError) as e:
        raise CommandError(str(e)) from None


def _colorizer(choice: str | None, device_name: str) -> tuple[Path, KeyframeColorizer]:
    """The keyframe model's file and the model loaded on the device, or an error saying what to do."""
    try:
        device = parse_device(device_name)
    except ValueError as e:
        raise CommandError(f"--device {e}") from None
    by_hand = "or leave out --colorize and colour the gray frames by hand"
    try:
        path = find_keyframe_model(choice)
    except KeyframeModelError:
        where, download = _missing(choice)
        raise CommandError(f"--colorize needs a DDColor keyframe model and there is none {where}: run "
                           f"`{download}`, {by_hand}") from None
    try:
        return path, load_colorizer(path, device)
    except KeyframeModelError as e:
        raise CommandError(f"--colorize: {e} Or leave out --colorize and colour the gray frames by hand.") from None


def _missing(choice: str | None) -> tuple[str, str]:
    """Where the keyframe model ``choice`` was looked for in vain, and the command that fetches it."""
    if choice is None:
        return f"in the model folder {default_model_dir()}", "vsexcolor download ddcolor"
    if choice in {model.name for model in KEYFRAME_MODELS}:
        extra = "" if choice == DEFAULT_KEYFRAME_MODEL else f" --model {choice}"
        return f"named {choice} in the model folder {default_model_dir()}", f"vsexcolor download ddcolor{extra}"
    return f"at {choice}", "vsexcolor download ddcolor"


def _write_frames(clip: vs.VideoNode, picked: list[shots_mod.Shot], names: list[str], folder: Path,
                  colorizer: KeyframeColorizer | None) -> list[list[list[np.ndarray]]]:
    """Write each shot's keyframes as ``names`` (in order) into ``folder``: gray, or with a
    colorizer in colour and gray in ``folder/gray``. Returns the thumbnails of each shot's
    keyframes, gray (then colour)."""
    gray = shots_mod.gray(clip)
    bits = 8 if clip.format.bits_per_sample == 8 else 16
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props)) if colorizer else None
    if colorizer:
        (folder / GRAY_FOLDER).mkdir(exist_ok=True)
    thumbs, named = [], iter(names)
    for shot in tqdm(picked, desc="writing frames", unit="shot", leave=False):
        thumbs.append([])
        for frame, name in zip(shot.keyframes, named):
            images = [np.asarray(gray.get_frame(frame)[0])]
            if colorizer is None:
                _write_png(folder / name, images[0])
            else:
                images.append(shots_mod.png_image(shots_mod.in_colour(luma, frame, colorizer), bits))
                _write_png(folder / name, images[1])
                _write_png(folder / GRAY_FOLDER / name, images[0])
            thumbs[-1].append([shots_mod.thumbnail(image) for image in images])
    return thumbs


def _write_png(path: Path, image: np.ndarray) -> None:
    _, png = cv2.imencode(".png", image)
    write_durably(path, png.tobytes())


def _end(info, last: int):
    """When frame ``last`` ends, in seconds."""
    end = info.seconds(last + 1)
    return end if end is not None else info.seconds(last) + 1 / info.fps
