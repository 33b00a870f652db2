"""``vsexcolor info``: where the weights are, whether they load, and what would run them."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..weights import ddcolor
from ..weights.devc import describe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="report the weights, versions and device",
        description="Report where the weights are looked for, whether they are found and load, "
                    "the DDColor keyframe models in the model folder and whether the one that would "
                    "be used loads, the torch and VapourSynth versions and the device that would be "
                    "used. Exits with 1 when no valid DEVC weights are found (colorize then runs the weight-free "
                    "propagate backend), else 0; the keyframe models do not change it.")
    parser.add_argument("--weights", type=Path, default=None,
                        help="checkpoint zip, its unpacked folder, or a folder holding the zip "
                             "(default: the model folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = describe(args.weights)
    rows = [("weights looked for in", f"{report.looked_in} ({report.origin})"),
            ("weights found", str(report.found) if report.found else "no")]
    rows += [("  uses", name) for name in report.files]
    rows += [("weights valid", "yes" if report.valid else f"no: {report.error}")]
    keyframes = ddcolor.describe()
    rows += [("keyframe models in", f"{keyframes.looked_in}: {', '.join(keyframes.present) or 'none'}"),
             ("keyframe model used", _keyframe_model(keyframes)),
             ("keyframe model valid", "yes" if keyframes.valid else f"no: {keyframes.error}"),
             ("torch", torch.__version__),
             ("VapourSynth", _vapoursynth_version()),
             ("device", _device())]
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        print(f"{label + ':':<{width}} {value}")
    # Keyframe models are optional (references can be given instead): only DEVC decides.
    return 0 if report.valid else 1


def _keyframe_model(report: ddcolor.KeyframeReport) -> str:
    if report.chosen is None:
        return "none"
    if report.encoder is None:
        return str(report.chosen)
    return f"{report.chosen} (DDColor with {ddcolor.ENCODER_NAMES[report.encoder]})"


def _vapoursynth_version() -> str:
    try:
        import vapoursynth as vs
    except ImportError as e:  # info exists to diagnose broken installs
        return f"not available ({e})"
    version = vs.core.core_version
    return f"R{version.release_major}" + (f".{version.release_minor}" if version.release_minor else "")


def _device() -> str:
    if torch.cuda.is_available():
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return "cpu"
