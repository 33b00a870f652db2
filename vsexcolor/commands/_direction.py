"""The ``--direction`` option, as ``colorize``'s ``direction``."""
from __future__ import annotations

import argparse
from typing import get_args

from ..filter.options import Direction


def add_direction_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, several: bool = False) -> None:
    """``--direction``; ``several``: a comma-separated list of directions (eval compares them)."""
    meaning = ("both (default): a frame between two keyframes or references of its shot takes the colours carried "
               "forward from the one before and backward from the one after, fused, so colour holds to a long "
               "shot's end; forward: from the one before only (the paper's)")
    if several:
        parser.add_argument("--direction", default="both",
                            help=f"comma-separated, from both, forward: each setting runs in each. {meaning}")
    else:
        parser.add_argument("--direction", choices=get_args(Direction), default="both", help=meaning)
