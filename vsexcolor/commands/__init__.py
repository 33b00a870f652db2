"""The ``vsexcolor`` command line: one subcommand per public module of this package.

Each such module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as a default; modules whose name starts with ``_`` are shared by the
commands. Everything a command prints for people goes to stderr, except what the command
exists to print (a table, a report).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ._errors import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsexcolor", description="Exemplar-based video colorization (DEVC) for files and VapourSynth.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as e:
        print(f"vsexcolor {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vsexcolor {args.command}: interrupted", file=sys.stderr)
        return 130
