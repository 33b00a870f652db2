"""``vsexcolor download``: fetch the authors' checkpoint into the model folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._errors import CommandError
from ..weights import ENV_VAR, OFFICIAL_URL, ZIP_NAME, WeightsError, default_model_dir, download


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download the DEVC weights (the authors' checkpoint)",
        description=f"Download {ZIP_NAME}, resuming an interrupted download, and keep it only if "
                    f"it loads into the networks. Prints the path of the zip.")
    parser.add_argument("--url", default=OFFICIAL_URL,
                        help="http(s):// or file:// address of the zip (default: the authors' v1.0 release)")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"model folder to save it in (default: ${ENV_VAR}, else the per-user data "
                             f"folder; now {default_model_dir()})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        path = download(args.url, args.dir)
    except WeightsError as e:
        raise CommandError(str(e)) from e
    print(path)
    return 0
