"""The ``--min-gap``, ``--max-gap`` and ``--one-keyframe`` options, as ``colorize``'s ``keyframe_gaps``."""
from __future__ import annotations

import argparse

from ..filter.options import KEYFRAME_GAPS, MAX_KEYFRAME_GAP_S
from ._errors import CommandError


def add_keyframe_gap_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options; :func:`keyframe_gaps` reads them. Unset, they read as None (the default)."""
    parser.add_argument("--min-gap", type=float, default=None, metavar="S",
                        help="seconds from a shot's automatic keyframe to the next at least (default "
                             f"{KEYFRAME_GAPS[0]}): a frame this far after the last keyframe or more becomes one "
                             "where the last no longer explains most of it, and so does the shot's last frame")
    parser.add_argument("--max-gap", type=float, default=None, metavar="S",
                        help="seconds from a shot's automatic keyframe to the next at most (default "
                             f"{KEYFRAME_GAPS[1]}): every this long from a shot's first frame starts with one")
    parser.add_argument("--one-keyframe", action="store_true",
                        help="one automatic keyframe a shot, the frame picked, however long the shot")


def keyframe_gaps(args: argparse.Namespace, default: tuple[float, float] | None = KEYFRAME_GAPS
                  ) -> tuple[float, float] | None:
    """``keyframe_gaps`` from the options, checked; ``default``: where none is given (a
    script's colorize call's, for one)."""
    given = args.min_gap is not None or args.max_gap is not None
    if args.one_keyframe:
        if given:
            raise CommandError("--one-keyframe places no keyframe after the first: leave out --min-gap and --max-gap")
        return None
    if not given:
        return default
    shortest, longest = default if default is not None else KEYFRAME_GAPS
    shortest = shortest if args.min_gap is None else args.min_gap
    longest = longest if args.max_gap is None else args.max_gap
    if not 0 < shortest <= longest <= MAX_KEYFRAME_GAP_S:
        raise CommandError(f"--min-gap and --max-gap must be seconds with 0 < min <= max <= {MAX_KEYFRAME_GAP_S}, "
                           f"got {shortest:g} and {longest:g}")
    return shortest, longest
