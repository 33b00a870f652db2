"""``vsexcolor download``: fetch the authors' DEVC checkpoint, or a DDColor model for keyframes,
into the model folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._errors import CommandError
from ..weights.ddcolor import DEFAULT_KEYFRAME_MODEL, KEYFRAME_MODELS, download_keyframe_model
from ..weights.devc import ENV_VAR, OFFICIAL_URL, ZIP_NAME, WeightsError, default_model_dir, download


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download the DEVC weights, or a DDColor model for keyframes",
        description=f"Download the weights into the model folder, resuming an interrupted download, "
                    f"and keep them only if they load into their network. `vsexcolor download` "
                    f"fetches the DEVC checkpoint ({ZIP_NAME}); `vsexcolor download ddcolor` fetches "
                    f"a DDColor model (default {DEFAULT_KEYFRAME_MODEL}), which colours keyframes "
                    f"when no reference is given. Prints the path of the file.")
    parser.add_argument("what", nargs="?", choices=("devc", "ddcolor"), default="devc",
                        help="devc (default): the DEVC checkpoint; ddcolor: a DDColor model")
    names = [model.name for model in KEYFRAME_MODELS]
    parser.add_argument("--model", choices=names, default=None, metavar="NAME",
                        help=f"with ddcolor: which released model, one of {', '.join(names)} "
                             f"(default {DEFAULT_KEYFRAME_MODEL}; {names[-1]} is the light one)")
    parser.add_argument("--url", default=None,
                        help="http(s):// or file:// address of the file (default: the authors' release)")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"model folder to save it in (default: ${ENV_VAR}, else the per-user data "
                             f"folder; now {default_model_dir()})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "devc" and args.model is not None:
        raise CommandError("--model chooses a DDColor model: use `vsexcolor download ddcolor --model NAME`.")
    try:
        if args.what == "ddcolor":
            path = download_keyframe_model(args.model or DEFAULT_KEYFRAME_MODEL, args.url, args.dir)
        else:
            path = download(args.url or OFFICIAL_URL, args.dir)
    except WeightsError as e:
        raise CommandError(str(e)) from e
    print(path)
    return 0
