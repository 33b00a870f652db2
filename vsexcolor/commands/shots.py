"""``vsexcolor shots``: find a film's shots and export one frame of each for colouring.

The first step of the per-shot workflow: colour the exported frames (by hand, or with an
image colorizer), then ``vsexcolor colorize INPUT --refs DIR`` the film.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import shots as shots_mod
from ..scenes import DEFAULT_THRESHOLD
from ..video import VideoError, open_clip, probe
from ..workfolder import write_durably
from ._errors import CommandError

SHEET = "contact-sheet.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shots", help="find the shots of a film and export a frame of each to colour",
        description="Find the shots with colorize's own cut detector and write, into DIR, one gray frame of "
                    "each (full size, lossless, named by its frame number: 000123.png), shots.json, shots.csv "
                    "and contact-sheet.png. Colour the frames you want, then: vsexcolor colorize INPUT --refs DIR.")
    parser.add_argument("input", type=Path, help="the black-and-white video")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--pick", choices=shots_mod.PICKS, default="sharpest",
                        help="which frame of a shot: its first, its middle, or (default) the sharpest of its "
                             "first second, which avoids fades and motion blur")
    parser.add_argument("--scene-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="T",
                        help=f"as colorize's: 0..1, lower finds more cuts (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier export in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder: Path = args.output
    if not 0.0 <= args.scene_threshold <= 1.0:
        raise CommandError(f"--scene-threshold must be in 0..1, got {args.scene_threshold}")
    if not folder.parent.is_dir():
        raise CommandError(f"the folder {str(folder.parent)!r} does not exist")
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is not a folder")
    try:
        info = probe(args.input)
    except VideoError as e:
        raise CommandError(str(e)) from None
    clip = open_clip(info)
    with tqdm(total=clip.num_frames, desc="finding shots", unit="frame", leave=False) as bar:
        found = shots_mod.find(clip, args.scene_threshold, bar.update)
    gray = shots_mod.gray(clip)
    picked = [shots_mod.Shot(i + 1, a, b, shots_mod.pick(gray, a, b, info.fps, args.pick))
              for i, (a, b) in enumerate(found)]
    names = [f"{shot.pick:06d}.png" for shot in picked]
    ours = [*names, "shots.json", "shots.csv", SHEET]
    if clashes := [n for n in ours if (folder / n).exists()] if folder.exists() else []:
        if not args.overwrite:
            raise CommandError(f"{folder} already holds {', '.join(clashes[:3])}{' ...' if len(clashes) > 3 else ''};"
                               " add --overwrite to replace them, or choose another folder")
    folder.mkdir(exist_ok=True)

    def start_of(n: int) -> str:
        return shots_mod.timecode(float(info.seconds(n) - info.seconds(0)))

    rows = [{"shot": s.number, "first": s.first, "last": s.last, "frame": s.pick, "start": start_of(s.first),
             "duration_s": round(float(_end(info, s.last) - info.seconds(s.first)), 3)} for s in picked]
    for shot, name in zip(tqdm(picked, desc="writing frames", unit="shot", leave=False), names):
        _, png = cv2.imencode(".png", np.asarray(gray.get_frame(shot.pick)[0]))
        write_durably(folder / name, png.tobytes())
    write_durably(folder / "shots.json", json.dumps(
        {"input": str(args.input.resolve()), "frames": info.num_frames, "fps": float(info.fps),
         "scene_threshold": args.scene_threshold, "pick": args.pick, "shots": rows}, indent=2).encode())
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_durably(folder / "shots.csv", table.getvalue().encode())
    _, sheet = cv2.imencode(".png", shots_mod.contact_sheet(gray, picked, start_of))
    write_durably(folder / SHEET, sheet.tobytes())
    mean = sum(s.length for s in picked) / len(picked)
    count = f"{len(picked)} shot{'' if len(picked) == 1 else 's'}"
    print(f"vsexcolor shots: {count}, {mean / float(info.fps):.1f} s ({mean:.0f} frames) long on average; wrote "
          f"{len(picked)} frames to colour, shots.json, shots.csv and {SHEET} to {folder}", file=sys.stderr)
    return 0


def _end(info, last: int):
    """When frame ``last`` ends, in seconds."""
    end = info.seconds(last + 1)
    return end if end is not None else info.seconds(last) + 1 / info.fps
