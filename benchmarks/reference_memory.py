"""The memory a large reference image costs: the peak resident set of reading it as colorize does.

An image of SIZE x SIZE pixels (default 8192, an 8K scan; a smooth gradient, so that the PNG
is small) is written as PNG and as JPEG, and each is read in a process of its own as the
reference of a 1920x1080 clip (``references``: an exemplar, since its size is not the
clip's). Printed: the file's size, the peak resident set over the process's own after its
imports (``ru_maxrss``), and the size of the picture kept.

    .venv/bin/python benchmarks/reference_memory.py
    .venv/bin/python benchmarks/reference_memory.py --size 16384
    .venv/bin/python benchmarks/reference_memory.py --code ../other-checkout   # another version
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Run in a fresh process: the peak over the baseline of reading one reference.
READ = """
import resource, sys
import vapoursynth as vs
from vsexcolor.filter.ref_inputs import references
clip = vs.core.std.BlankClip(width=1920, height=1080, format=vs.YUV420P8, length=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(keyed,) = references(clip, sys.argv[1], False, [], report=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak - before, keyed.rgb.shape[1], keyed.rgb.shape[0], keyed.rgb.nbytes)
"""


def write_images(folder: Path, size: int) -> list[Path]:
    """A colour gradient of ``size`` x ``size`` as PNG and JPEG (written in strips: the
    writer itself must not need what is measured)."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    image = np.empty((size, size, 3), np.uint8)
    for top in range(0, size, 1024):
        rows = ramp[top:top + 1024, None]
        image[top:top + 1024, :, 0] = ramp[None, :]
        image[top:top + 1024, :, 1] = rows
        image[top:top + 1024, :, 2] = (rows + ramp[None, :]) / 2
    paths = [folder / "000000.png", folder / "000000.jpg"]
    for path in paths:
        cv2.imwrite(str(path), image)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="side of the square image (default 8192)")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose vsexcolor reads the images (default: this one)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(args.code.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_images(Path(tmp), args.size):
            run = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True,
                                 env=env, cwd=args.code)
            if run.returncode:
                print(f"{path.suffix}: {run.stderr.strip().splitlines()[-1]}")
                continue
            grown_kib, width, height, kept = map(int, run.stdout.split())
            print(f"{path.suffix[1:]:4} {path.stat().st_size / 2**10:8.0f} KiB on disk: "
                  f"peak +{grown_kib / 2**20:.2f} GiB reading it, keeps {width}x{height} ({kept / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
