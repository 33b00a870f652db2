"""``vsexcolor train``: train or fine-tune the DEVC networks from a config file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train or fine-tune the DEVC networks on colour videos",
        description="Train or fine-tune DEVC as the config file says (see examples/train_finetune.toml). "
                    "Progress goes to stderr and to OUT_DIR/log.jsonl; the weights are exported to "
                    "OUT_DIR/weights, which `vsexcolor.colorize(..., weights=...)` loads. For several GPUs, "
                    "launch with `torchrun --nproc_per_node=N -m vsexcolor train --config FILE`.")
    parser.add_argument("--config", type=Path, required=True, help="the .toml or .json config file")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/checkpoint.pt instead of starting a new run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `vsexcolor --help` and the other commands need not load the trainer.
    from ..train import CheckpointError, ConfigError, DataError, load_config, train
    from ..weights.devc import WeightsError

    try:
        train(load_config(args.config), resume=args.resume)
    except (ConfigError, DataError, CheckpointError, WeightsError) as e:
        raise CommandError(str(e)) from e
    return 0
