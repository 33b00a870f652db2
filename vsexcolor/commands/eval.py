"""``vsexcolor eval``: the quality benchmark on colour clips with ground truth.

Prints the table on stdout; writes the full report as JSON and a plot of PSNR per frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from ._direction import add_direction_option
from ._errors import CommandError
from ..devices import parse_device
from ..eval import benchmark
from ..eval.clips import BUNDLED
from ..filter.options import Direction


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise CommandError(f"--{what}: {', '.join(bad) or 'none given'}; choose from {', '.join(allowed)}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score colorization methods on gray versions of colour clips",
        description="Turn colour clips gray (the L of their Lab), colorize them and score the result "
                    "against the originals: PSNR, SSIM, CIEDE2000, drift (PSNR of the first and last "
                    "10 scored frames, and per shot of 40 frames or more), colourfulness and temporal "
                    "stability (CDC, flow warp error), per clip and averaged over clips. "
                    "propagate and devc run through vsexcolor.colorize at its defaults, as users get them. "
                    "Settings: 'keyframe' gives frame 0 in colour as reference and initial state; "
                    "'reference' gives a colour frame far from the scored ones (or --ref); 'shots' gives "
                    "each shot's first frame in colour as its keyframe and scores each shot; 'ntire' gives "
                    "frames 0, 50 and 100 in colour (NTIRE 2023's protocol); 'placed' gives in colour the "
                    "keyframes the filter's rule for long shots places (a perfect keyframe colorizer).")
    parser.add_argument("clips", nargs="*", default=list(BUNDLED),
                        help=f"video files, folders of frames, or bundled clip names (default: {' '.join(BUNDLED)})")
    parser.add_argument("--frames", type=int, default=120, help="frames scored per clip, from the start (default 120)")
    parser.add_argument("--methods", default=",".join(benchmark.METHODS),
                        help="comma-separated, from gray, naive, propagate, devc (devc is skipped "
                             "when its weights do not load); default all")
    parser.add_argument("--settings", default=",".join(benchmark.SETTINGS),
                        help=f"comma-separated, from {', '.join(benchmark.SETTINGS)} (default all)")
    parser.add_argument("--ref", type=Path, default=None,
                        help="image used as the reference of the 'reference' setting for every clip "
                             "(default: each clip's frame FRAMES after the scored ones, or its last)")
    parser.add_argument("--weights", type=Path, default=None, help="DEVC checkpoint zip or folder")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    parser.add_argument("--json", type=Path, default=Path("vsexcolor-eval.json"),
                        help="report file (default vsexcolor-eval.json)")
    parser.add_argument("--plot", type=Path, default=Path("vsexcolor-eval.png"),
                        help="PNG plot of PSNR per frame (default vsexcolor-eval.png)")
    parser.add_argument("--quick", action="store_true",
                        help="PSNR only: skips SSIM, CIEDE2000, colourfulness and the temporal metrics")
    parser.add_argument("--overwrite", action="store_true", help="replace existing report and plot files")
    add_direction_option(parser, several=True)
    parser.set_defaults(func=run)


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    """Before the long run: the report files can be written, and replace nothing unasked."""
    for path in paths:
        if path.exists() and not overwrite:
            raise CommandError(f"{path} exists; add --overwrite to replace it, or name another file")
        if not path.parent.is_dir():
            raise CommandError(f"{path}: no such folder {path.parent}")


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise CommandError(f"--frames must be at least 2, got {args.frames}")
    methods = _names(args.methods, benchmark.METHODS, "methods")
    settings = _names(args.settings, benchmark.SETTINGS, "settings")
    directions = _names(args.direction, get_args(Direction), "direction")
    try:
        device = parse_device(args.device)
    except ValueError as e:
        raise CommandError(f"--device {e}") from None
    _check_outputs([args.json, args.plot], args.overwrite)
    try:
        report = benchmark.run(args.clips, frames=args.frames, methods=methods, settings=settings,
                               reference=args.ref, device=device, weights=args.weights,
                               full=not args.quick, directions=directions)
    except (OSError, ValueError) as e:
        raise CommandError(str(e)) from None
    print(benchmark.table(report))
    benchmark.write_json(report, args.json)
    benchmark.plot_psnr(report, args.plot)
    benchmark.log(f"wrote {args.json} and {args.plot}")
    return 0
