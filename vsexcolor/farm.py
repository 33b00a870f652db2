"""A render's parts as Ray tasks: scenes rendered on many machines, joined here.

The driver (this process) has the parts planned (:func:`plan_on_ray`: pieces of the film
read in parallel tasks, no network run), groups runs of consecutive parts into tasks
(:func:`balance`) and hands them to Ray. A task builds the clip where it runs (each worker
process reads the weights once: :mod:`.weights` keeps them) and is a generator: it gives
each part as soon as it is encoded, as objects of its own, so the driver never holds more
than a piece of a part (``CHUNK`` bytes) at once:

* where the work folder is on storage the worker sees too (it reads back the probe the
  driver left there, :meth:`~vsexcolor.workfolder.WorkFolder.share`), the worker writes the
  part there itself, durably, and sends only its name and size, which the driver records;
* elsewhere it sends the part's bytes in pieces, which the driver writes.

A task lost with its machine (or its worker process, or its objects) costs the part it was
encoding: the driver hands the parts it has not received to a new task (``RETRIES`` times
at most), and a part is taken only whole, so the result does not change. Every machine
must read the input, script, references and weights at the same path (the shared storage
of a render farm).
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .pipeline import (Built, Render, RenderError, build, encode, fingerprint_dicts, frames_in, part_firsts,
                       parts_of, plan_parts)
from .workfolder import Incoming, WorkError, WorkFolder, part_path, sees_probe, write_durably

#: Tasks per worker: enough that the last ones are short and the machines finish together.
TASKS_PER_WORKER = 4
#: Frames a planning task reads at least: its first frame's scene start is looked for
#: again by each, so pieces much shorter than a scene would repeat that work.
PLAN_PIECE = 500
#: Seconds to wait for a cluster's address to answer before giving up.
CONNECT_TIMEOUT_S = 10
#: Bytes of a part sent in one object (the most the driver holds of a part at once).
CHUNK = 32 << 20
#: Objects a task may have given that the driver has not taken yet (Ray's backpressure):
#: the most a worker's object store holds of its task's output.
AHEAD = 4
#: Times the rest of a task is handed out again after its machine, worker or objects were lost.
RETRIES = 3


@dataclass
class Started:
    """A task's first object: where it runs and what the filter resolved there; ``waited``:
    seconds from its submission to its start (Ray's scheduling, a worker process's start;
    by the clocks of two machines), ``built``: seconds to build the clip (the weights'
    loading among them)."""

    node: str
    fingerprints: list[dict]
    waited: float
    built: float


@dataclass
class Chunk:
    """Bytes of the part being sent (not its last)."""

    data: bytes


@dataclass
class Part:
    """A part done: frames ``first``..``last``, ``size`` bytes; ``data``: its last bytes, or
    None where the worker wrote it into the shared work folder."""

    first: int
    last: int
    restart: bool  # it restarts a shot at a keyframe inside it
    size: int
    data: bytes | None = None


@dataclass
class Finished:
    """A task's last object: seconds it spent rendering and encoding its parts."""

    rendered: float


@dataclass
class Task:
    """A task as the driver saw it: the parts asked for (``group``), the attempt (1, then
    2.. for the rest of a lost one), what it said of itself, the parts received, and
    ``lost``: why it ended before its last part ('' if it did not)."""

    group: list[tuple[int, int]]
    attempt: int = 1
    node: str = ""
    waited: float = 0.0
    built: float = 0.0
    rendered: float = 0.0
    received: list[tuple[int, int]] = field(default_factory=list)
    lost: str = ""

    def rest(self) -> list[tuple[int, int]]:
        return [p for p in self.group if p not in self.received]


@dataclass
class FarmReport:
    """Frames made per node, and every task as it ended (retries and lost ones included)."""

    nodes: dict[str, int]
    tasks: list[Task]

    def retried(self) -> list[Task]:
        return [t for t in self.tasks if t.lost]


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


def render_on_ray(render: Render, work: WorkFolder, todo: list[tuple[int, int]], *, address: str | None,
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
        task = ray.remote(_render_task).options(num_gpus=1 if gpu else 0, num_cpus=1, max_retries=0,
                                                _generator_backpressure_num_objects=AHEAD)
        total = frames_in(parts)
        bar = tqdm(total=render.frames, initial=render.frames - total, desc=f"{name} on ray", unit="frame",
                   disable=not progress, dynamic_ncols=True)
        with bar:
            return _Driver(ray, render, work, task, counter, _shared_folder(work), 2 * slots).run(
                groups, lambda received: _show(bar, render.frames - total + max(received, _count(ray, counter,
                                                                                                  received))))


def _show(bar: tqdm, n: int) -> None:
    bar.n = n
    bar.refresh()


def _shared_folder(work: WorkFolder) -> tuple[str, str] | None:
    """The work folder and its probe's token, for workers that see it to write their parts
    there (None: every part comes through the driver)."""
    return work.share()


class _Driver:
    """Hands the tasks out (``running`` at most at once), takes their objects as they come
    and stores the parts, hands out again the rest of a task that was lost."""

    def __init__(self, ray, render: Render, work: WorkFolder, task, counter, shared: tuple[str, str] | None,
                 running: int) -> None:
        self.ray, self.render, self.work, self.task, self.counter, self.shared = ray, render, work, task, counter, shared
        self.limit = max(1, running)
        self.report = FarmReport({}, [])
        self.running: dict[object, Task] = {}
        self.incoming: dict[int, Incoming] = {}

    def run(self, groups: list[list[tuple[int, int]]], progress) -> FarmReport:
        ray = self.ray
        queue = deque(Task(g) for g in groups)
        received, shown = 0, 0.0
        try:
            while queue or self.running:
                while queue and len(self.running) < self.limit:
                    task = queue.popleft()
                    self.running[self.task.remote(self.render, task.group, self.counter, time.time(),
                                                  self.shared)] = task
                ready, _ = ray.wait(list(self.running), num_returns=1, timeout=0.5)
                for stream in ready:
                    task = self.running[stream]
                    try:
                        ref = next(stream)
                    except StopIteration:
                        self._ended(stream, task)
                        continue
                    try:
                        item = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # raised by our code: running it again fails again
                        raise RenderError(_cause(e)) from None
                    except ray.exceptions.RayError as e:  # a machine, a worker process or an object lost
                        self._ended(stream, task, lost=_cause(e))
                        if task.attempt > RETRIES:
                            raise RenderError(f"a task was lost {task.attempt} times, the last time {task.lost}; "
                                              "run again with --resume") from None
                        if task.rest():
                            queue.appendleft(Task(task.rest(), task.attempt + 1))
                        continue
                    del ref
                    received += self._take(task, item)
                if time.monotonic() - shown > 0.5:
                    progress(received)
                    shown = time.monotonic()
        except BaseException:
            for stream in self.running:
                ray.cancel(stream, force=True)
            for incoming in self.incoming.values():
                incoming.discard()
            raise
        return self.report

    def _take(self, task: Task, item: object) -> int:
        """Store what a task sent; the frames it completes."""
        where = f" (of {task.node})"
        if isinstance(item, Started):
            task.node, task.waited, task.built = item.node, item.waited, item.built
            self.work.settle("colorize", item.fingerprints, where=where)
        elif isinstance(item, Chunk):
            self._incoming(task).write(item.data)
        elif isinstance(item, Part):
            if item.data is None:
                self.work.record(item.first, item.last, item.size, item.restart, where=f" by {task.node}")
            else:
                incoming = self._incoming(task)
                incoming.write(item.data)
                del self.incoming[id(task)]
                if incoming.size != item.size:
                    incoming.discard()
                    raise RenderError(f"a part of {task.node} came with {incoming.size} bytes, not {item.size}; "
                                      "run again with --resume")
                self.work.add(item.first, item.last, incoming.close(), item.restart)
            task.received.append((item.first, item.last))
            frames = item.last - item.first + 1
            self.report.nodes[task.node] = self.report.nodes.get(task.node, 0) + frames
            return frames
        elif isinstance(item, Finished):
            task.rendered = item.rendered
        return 0

    def _incoming(self, task: Task) -> Incoming:
        if id(task) not in self.incoming:
            self.incoming[id(task)] = self.work.incoming()
        return self.incoming[id(task)]

    def _ended(self, stream, task: Task, lost: str = "") -> None:
        del self.running[stream]
        if lost:  # whatever of it may still run
            with contextlib.suppress(Exception):
                self.ray.cancel(stream, force=True)
        if (incoming := self.incoming.pop(id(task), None)) is not None:
            incoming.discard()
        task.lost = lost
        if not lost and task.rest():
            raise RenderError(f"a task of {task.node} ended without frames {task.rest()[0][0]}.."
                              f"{task.rest()[-1][1]}; run again with --resume")
        self.report.tasks.append(task)


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


def _render_task(render: Render, group: list[tuple[int, int]], counter, submitted: float,
                 shared: tuple[str, str] | None) -> Iterator[Started | Chunk | Part | Finished]:
    """One task: the parts ``group`` (consecutive) rendered where Ray runs it, each given
    as soon as it is encoded (see the module's docstring)."""
    started = time.time()
    node, built = _built_on_node(render)
    ready = time.time()
    yield Started(node, fingerprint_dicts(built), waited=started - submitted, built=ready - started)
    firsts = {a for a, _ in group}
    frames = [0]

    def tick() -> None:
        frames[0] += 1
        if frames[0] % 8 == 0:
            counter.add.remote(8)

    folder = Path(shared[0]) if shared and sees_probe(*shared) else None
    with tempfile.TemporaryDirectory(prefix="vsexcolor-") as scratch:
        for first, last, path, restart in encode(render, built, group[0][0], group[-1][1],
                                                 lambda n, frame: n in firsts, folder or Path(scratch), tick):
            size = path.stat().st_size
            if folder is not None:
                write_durably(part_path(folder, first, last), path)
                yield Part(first, last, restart, size)
                continue
            with path.open("rb") as f:
                data = f.read(CHUNK)
                while len(data) == CHUNK and (more := f.read(CHUNK)):
                    yield Chunk(data)
                    data = more
            yield Part(first, last, restart, size, data)
    yield Finished(time.time() - ready)


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
    try:
        import ray
    except ImportError:
        raise RenderError("--ray needs Ray: pip install 'vsexcolor[cluster]'") from None
    return ray


class _connected:
    """A Ray session for the render: the cluster at ``address`` (or $RAY_ADDRESS), else a Ray
    started here; gives the number of task slots (GPUs or CPUs)."""

    def __init__(self, ray, address: str | None, workers: int | None, gpu: bool) -> None:
        self.ray, self.address, self.workers, self.gpu = ray, address or os.environ.get("RAY_ADDRESS"), workers, gpu

    def __enter__(self) -> int:
        ray = self.ray
        if self.address:
            _check_reachable(self.address)
            ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        else:
            # Every task takes a CPU (planning runs no network); rendering takes a GPU too
            # where the networks run on one.
            cpus = os.cpu_count() if self.gpu else self.workers or os.cpu_count()
            ray.init(num_cpus=cpus, num_gpus=self.workers if self.gpu else None, include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False)
        resources = ray.cluster_resources()
        return max(1, int(resources.get("GPU" if self.gpu else "CPU", 1)))

    def __exit__(self, *exc) -> None:
        self.ray.shutdown()


def _check_reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RenderError(f"--ray takes HOST:PORT (that of `ray start --head`), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise RenderError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                          "`ray start --head`, or check the address") from None


def _cause(error: Exception) -> str:
    """A task's failure in one line: ours as we said it, Ray's own in its first line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, RenderError):
        return str(cause)
    text = str(cause or error).strip().splitlines()
    return text[-1] if text else type(error).__name__
