"""The ``vsexcolor`` command line: one subcommand per public module of this package.

Each such module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as a default; modules whose name starts with ``_`` are shared by the
commands. Everything a command prints for people goes to stderr, except what the command
exists to print (a table, a report).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Iterator

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
        with _notes(args.command):
            return int(args.func(args) or 0)
    except CommandError as e:
        print(f"vsexcolor {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vsexcolor {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _notes(command: str) -> Iterator[None]:
    """vsexcolor's warnings as notes of ``command``, each once. The filter warns each time it
    is built, since a warning is all a script's user sees; a command builds it several times
    (to check, to plan, to render) and would repeat them."""
    shown: set[str] = set()
    with warnings.catch_warnings():
        # Python's own once-per-place would hide the note from a second command in this process
        # and repeat it for each run of a .vpy: once per command is decided here.
        warnings.filterwarnings("always", message="vsexcolor: ")
        others = warnings.showwarning

        def note(message, category, filename, lineno, file=None, line=None) -> None:
            text = str(message)
            if not text.startswith("vsexcolor: "):
                others(message, category, filename, lineno, file, line)
            elif text not in shown:
                shown.add(text)
                print(f"vsexcolor {command}: note: {text.removeprefix('vsexcolor: ')}", file=sys.stderr)

        warnings.showwarning = note
        yield
