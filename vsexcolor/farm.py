"""A render's parts as Ray tasks: scenes rendered on many machines, joined here.

The driver (this process) has the parts planned (:func:`plan_on_ray`: pieces of the film
read in parallel tasks, no network run), groups runs of consecutive parts into tasks of
about equal frame counts,
more tasks than workers and the longest first, so that no machine waits on one long
straggler at the end, and hands them to Ray. A task builds the clip where it runs (each
worker process reads the weights once: :mod:`.weights` keeps them), encodes its parts and
sends their bytes back through Ray's object store; only the driver writes, each task's
parts as soon as they arrive. Ray runs a task again when its node is lost; a part is
written only whole, so the result does not change. Every machine must read the input,
script, references and weights at the same path (the shared storage of a render farm).
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import cluster
from .cluster import Access
from .pipeline import (Built, Render, RenderError, build, encode, fingerprint_dicts, frames_in, part_firsts,
                       parts_of, plan_parts)
from .workfolder import WorkFolder

#: Tasks per worker: enough that the last ones are short and the machines finish together.
TASKS_PER_WORKER = 4
#: Frames a planning task reads at least: its first frame's scene start is looked for
#: again by each, so pieces much shorter than a scene would repeat that work.
PLAN_PIECE = 500


@dataclass
class Done:
    """What a task sends back; ``waited``: seconds from its submission to its start (Ray's
    scheduling, a worker process's start; by the clocks of two machines), ``built``: seconds
    to build the clip (the weights' loading among them), ``rendered``: seconds to render and
    encode its parts."""

    node: str
    parts: list[tuple[int, int, bytes, bool]]  # first, last, encoded part, restarts its shot
    fingerprints: list[dict]
    waited: float = 0.0
    built: float = 0.0
    rendered: float = 0.0


@dataclass
class FarmReport:
    """Frames made per node, and every task as it came back (without its parts)."""

    nodes: dict[str, int]
    tasks: list[Done]


def balance(parts: list[tuple[int, int]], tasks: int) -> list[list[tuple[int, int]]]:
    """Runs of consecutive ``parts`` as about ``tasks`` tasks of similar frame counts, the
    longest first. A part is never split: it is a scene, which starts from nothing."""
    total = frames_in(parts)
    target = max(1, -(-total // max(1, tasks)))
    groups: list[list[tuple[int, int]]] = [[]]
    for a, b in parts:
        if groups[-1] and (a != groups[-1][-1][1] + 1 or frames_in(groups[-1]) + (b - a + 1) > target):
            groups.append([])
        groups[-1].append((a, b))
    return sorted((g for g in groups if g), key=frames_in, reverse=True)


def render_on_ray(render: Render, work: WorkFolder, todo: list[tuple[int, int]], *, address: Access | str | None,
                  workers: int | None, progress: bool, name: str) -> FarmReport:
    """Render the runs of frames ``todo`` on Ray into ``work``."""
    ray = _ray()
    planned = build(render, planning=True)
    gpu = any(f.device == "cuda" for f in planned.fingerprints)
    with _connected(ray, address, workers, gpu) as slots:
        parts = plan_on_ray(ray, render, planned, todo, progress) if planned.by_scene else \
            plan_parts(render, planned, todo)
        groups = balance(parts, TASKS_PER_WORKER * slots)
        counter = ray.remote(_Counter).options(num_cpus=0, max_restarts=-1).remote()
        task = ray.remote(_render_task).options(
            num_gpus=1 if gpu else 0, num_cpus=1, max_retries=3, retry_exceptions=False)
        pending = {task.remote(render, group, counter, time.time()): group for group in groups}
        report = FarmReport({}, [])
        total = sum(frames_in(g) for g in groups)
        bar = tqdm(total=render.frames, initial=render.frames - total, desc=f"{name} on ray", unit="frame",
                   disable=not progress, dynamic_ncols=True)
        written = 0
        with bar, _cancelled_on_error(ray, pending):
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    group = pending.pop(ref)
                    try:
                        done: Done = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        raise RenderError(_cause(e)) from None
                    work.settle("colorize", done.fingerprints, where=f" (of {done.node})")
                    for first, last, data, restart in done.parts:
                        work.add(first, last, data, restart)
                    written += frames_in(group)
                    report.nodes[done.node] = report.nodes.get(done.node, 0) + frames_in(group)
                    done.parts = []
                    report.tasks.append(done)
                bar.n = render.frames - total + max(written, _count(ray, counter, written))
                bar.refresh()
    return report


def plan_on_ray(ray, render: Render, planned: Built, todo: list[tuple[int, int]], progress: bool
                ) -> list[tuple[int, int]]:
    """The parts of the runs of frames ``todo`` where they are scenes, each run read in
    pieces of at least PLAN_PIECE frames by parallel tasks (:func:`~vsexcolor.pipeline.part_firsts`)."""
    task = ray.remote(_plan_task).options(num_cpus=1, max_retries=3, retry_exceptions=False)
    total = frames_in(todo)
    size = max(PLAN_PIECE, -(-total // max(1, 4 * int(ray.cluster_resources().get("CPU", 1)))))
    pending = {task.remote(render, a, min(a + size - 1, b), first): min(a + size, b + 1) - a
               for first, b in todo for a in range(first, b + 1, size)}
    firsts: list[int] = []
    with tqdm(total=total, desc="planning", unit="frame", leave=False, disable=not progress,
              dynamic_ncols=True) as bar:
        with _cancelled_on_error(ray, pending):
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                try:
                    firsts += ray.get(ready[0])
                except ray.exceptions.RayTaskError as e:
                    raise RenderError(_cause(e)) from None
                bar.update(pending.pop(ready[0]))
    return parts_of(todo, sorted(firsts))


@contextlib.contextmanager
def _cancelled_on_error(ray, pending: dict) -> Iterator[None]:
    """Tasks still ``pending`` are cancelled when the driver stops early (a task failed,
    Ctrl-C), so a cluster does not go on with work nobody will collect."""
    try:
        yield
    except BaseException:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        raise


def _plan_task(render: Render, a: int, b: int, run_first: int) -> list[int]:
    """One planning task: where parts start in frames ``a``..``b``."""
    _, built = _built_on_node(render, planning=True)
    return part_firsts(render, built, a, b, run_first)


def _built_on_node(render: Render, planning: bool = False) -> tuple[str, Built]:
    """The render's clip built on the node a task runs on, and the node's name; what fails
    there (a path it cannot read, a script that fails) names the node."""
    import ray

    node = f"{socket.gethostname()} {ray.util.get_node_ip_address()} node {ray.get_runtime_context().get_node_id()[:8]}"
    for path in render.recipe.paths():
        if not os.access(path, os.R_OK):
            raise RenderError(f"node {node} cannot read {path}: every machine must read the input, script, "
                              "references and weights at the same path")
    try:
        return node, build(render, planning)
    except RenderError as e:
        raise RenderError(f"node {node}: {e}") from None


def _render_task(render: Render, group: list[tuple[int, int]], counter, submitted: float) -> Done:
    """One task: the parts ``group`` (consecutive) rendered where Ray runs it."""
    started = time.time()
    node, built = _built_on_node(render)
    ready = time.time()
    firsts = {a for a, _ in group}
    frames = [0]

    def tick() -> None:
        frames[0] += 1
        if frames[0] % 8 == 0:
            counter.add.remote(8)

    out: list[tuple[int, int, bytes, bool]] = []
    with tempfile.TemporaryDirectory(prefix="vsexcolor-") as scratch:
        encode(render, built, group[0][0], group[-1][1], lambda n, frame: n in firsts, Path(scratch),
               lambda first, last, path, restart: out.append((first, last, path.read_bytes(), restart)), tick)
    return Done(node, out, fingerprint_dicts(built), waited=started - submitted, built=ready - started,
                rendered=time.time() - ready)


class _Counter:
    """Frames made across the cluster, for the progress bar (a task run again counts twice)."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def total(self) -> int:
        return self.frames


def _count(ray, counter, fallback: int) -> int:
    try:
        return ray.get(counter.total.remote(), timeout=1)
    except Exception:  # the counter's node is gone: the bar counts finished tasks only
        return fallback


def _ray():
    return cluster.ray_module()


class _connected:
    """A Ray session for the render on ``address``: a checked :class:`~vsexcolor.cluster.Access`,
    or an address (None or "": $RAY_ADDRESS, else a Ray started here), checked here; gives
    the number of task slots (GPUs or CPUs)."""

    def __init__(self, ray, address: Access | str | None, workers: int | None, gpu: bool) -> None:
        self.ray, self.address, self.workers, self.gpu = ray, address, workers, gpu
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> int:
        access = self.address if isinstance(self.address, Access) else cluster.check(self.address)
        with contextlib.ExitStack() as stack:
            stack.enter_context(cluster.session(self.ray, access, workers=self.workers, gpu=self.gpu))
            resources = self.ray.cluster_resources()
            self._stack = stack.pop_all()
        return max(1, int(resources.get("GPU" if self.gpu else "CPU", 1)))

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)


def _cause(error: Exception) -> str:
    """A task's failure in one line: ours as we said it, Ray's own in its first line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, RenderError):
        return str(cause)
    text = str(cause or error).strip().splitlines()
    return text[-1] if text else type(error).__name__
