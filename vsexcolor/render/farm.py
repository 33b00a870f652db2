"""A render's parts as Ray tasks: scenes rendered on many machines, joined here.

The driver (this process) has the parts planned (:class:`~.scheduling.Planning`: pieces of
the film read in parallel tasks, no network run) and hands runs of consecutive parts to Ray
as tasks as soon as they are known (:class:`~.scheduling.Schedule`: rendering starts while
the rest of the film is planned; once it all is, tasks of decreasing length, the longest
first). A task (:mod:`.node_tasks`) builds the clip where it runs (each worker process
reads the weights once: :mod:`~vsexcolor.weights` keeps them) and is a generator: it gives
each part as soon as it is encoded, as objects of its own, so the driver never holds more
than a piece of a part (``CHUNK`` bytes) at once:

* where the work folder is on storage the worker sees too (it reads back the probe the
  driver left there, :meth:`~vsexcolor.render.workfolder.WorkFolder.share`), the worker writes the
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
import dataclasses
import os
import secrets
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field

from tqdm import tqdm

from . import cluster
from .cluster import Access
from .environment import differences, environment
from .node_tasks import (Chunk, Counter, Finished, Part, Started, cannot_read, check_task, devices_here, plan_task,
                         render_task)
from .pipeline import Render, RenderError, build, frames_in, kept_parts, plan_parts
from .scheduling import NodeCheck, Placement, Planning, Schedule, piece_size, placement
from .workfolder import Incoming, WorkError, WorkFolder

#: Objects a task may have given that the driver has not taken yet (Ray's backpressure):
#: the most a worker's object store holds of its task's output.
AHEAD = 4
#: Times the rest of a task is handed out again after its machine, worker or objects were lost.
RETRIES = 3


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
    """Frames made per node, every task as it ended (retries and lost ones included), and
    the seconds the driver spent taking the parts' objects and storing them (``storing``)."""

    nodes: dict[str, int]
    tasks: list[Task]
    storing: float = 0.0
    parts: int = 0
    where: Placement | None = None  # the device the tasks ran on, and how many ran at once

    def retried(self) -> list[Task]:
        return [t for t in self.tasks if t.lost]


def render_on_ray(render: Render, work: WorkFolder, todo: list[tuple[int, int]], *, address: Access | str | None,
                  workers: int | None, progress: bool, name: str) -> FarmReport:
    """Render the runs of frames ``todo`` on Ray into ``work``, once every node has shown it
    reads the render's files and renders with what this machine does (:mod:`.environment`),
    on the device each node resolves (:func:`~.scheduling.placement`): planned in parallel
    tasks where its parts are scenes (pieces of the film read, no network run), the parts
    handed out as they become known.

    Whatever stops it (a task's error, a task lost too often, Ray's own failure, Ctrl-C)
    ends in one line saying that the finished parts, if any, are kept for ``--resume``."""
    ray = _ray()
    planned = build(render, planning=True)
    access = address if isinstance(address, Access) else cluster.check(address)
    here_gpu = False  # a Ray started here has this machine's GPUs, where the render runs on one here
    if access.address is None:
        here_gpu = any(f.device == "cuda" for f in planned.fingerprints)
        workers, threads = local_workers(workers, here_gpu, [f.backend for f in planned.fingerprints])
        render = dataclasses.replace(render, threads=threads)
    ours = environment(render.codec, render.recipe.paths())
    try:
        with cluster.session(ray, access, workers=workers, gpu=here_gpu):
            shipped, key = ray.put(render), secrets.token_hex(8)  # sent once, not with every task
            nodes = _checked(ray, shipped, ours)
            where = placement(nodes)
            cpus = int(sum(n.cpus for n in nodes))
            # Planning takes the CPUs that rendering leaves (a task takes a GPU and a CPU).
            planners = max(1, cpus - where.slots) if where.gpu else cpus
            # Scenes are found by planning tasks; chunks are counted here.
            planning = Planning(todo if planned.by_scene else [], piece_size(frames_in(todo), planners))
            counter = ray.remote(Counter).options(num_cpus=0, max_restarts=-1).remote()
            task = ray.remote(render_task).options(num_gpus=1 if where.gpu else 0, num_cpus=1, max_retries=0,
                                                   _generator_backpressure_num_objects=AHEAD)
            plan = ray.remote(plan_task).options(num_cpus=1, max_retries=3, retry_exceptions=False)
            total = frames_in(todo)
            bar = tqdm(total=render.frames, initial=render.frames - total, desc=f"{name} on ray", unit="frame",
                       disable=not progress, dynamic_ncols=True)
            driver = _Driver(ray, shipped, work, task, counter, _shared_folder(work), where, ours)
            with bar:
                if not planned.by_scene:
                    driver.schedule.known(plan_parts(render, planned, todo))
                return driver.run(planning, lambda piece: plan.remote(shipped, key, *piece[:3]), planners,
                                  lambda received: _show(bar, render.frames - total + max(received, _count(
                                      ray, counter, received))))
    except KeyboardInterrupt:
        print(f"vsexcolor {name}: stopped{kept_parts(work)}", file=sys.stderr)
        raise
    except (RenderError, WorkError) as e:
        raise RenderError(f"{e}{kept_parts(work)}") from None
    except ray.exceptions.RayError as e:  # Ray itself failed (a planning task lost too often, the cluster gone)
        raise RenderError(f"Ray failed: {_cause(e)}{kept_parts(work)}") from None


#: Memory a worker process may take at its peak, by the backend it runs (README: devc 2.3 to
#: 3.6 GB at the default size, propagate 0.9 to 1.9 GB), and for a script without colorize.
WORKER_MEMORY = {"devc": 4 << 30, "propagate": 2 << 30, None: 1 << 30}


def local_workers(workers: int | None, gpu: bool, backends: list[str]) -> tuple[int | None, int]:
    """For a Ray started here: the workers (as asked, else one per core or GPU), no more than
    this machine's free memory holds (a note says so where that lowers them), and torch's
    threads in each, this machine's cores shared among them."""
    import torch

    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if gpu else 0
    if gpu and workers and workers > gpus:  # Ray would hand out GPU ids this machine lacks
        warnings.warn(f"vsexcolor: {gpus} worker{'s' if gpus > 1 else ''} rather than {workers}: a worker renders on "
                      f"a GPU of its own, and this machine has {gpus}", stacklevel=2)
        workers = gpus
    asked = workers or (gpus if gpu else cores)
    each = max(WORKER_MEMORY.get(b, WORKER_MEMORY["devc"]) for b in backends) if backends else WORKER_MEMORY[None]
    free = _free_memory()
    asked = max(1, asked)
    fit = max(1, free // each) if free else asked
    if asked > fit:
        warnings.warn(f"vsexcolor: {fit} worker{'s' if fit > 1 else ''} rather than {asked}: a worker process "
                      f"takes up to {each >> 30} GiB with {'/'.join(sorted({b for b in backends})) or 'this script'} "
                      f"and this machine has {free / 2**30:.1f} GiB free", stacklevel=2)
        asked = fit
    return asked, max(1, cores // asked)


def _free_memory() -> int:
    """Bytes of memory this machine has free for new processes (Linux's MemAvailable); 0
    where it cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _checks(ray, render) -> dict:
    """A check task (:func:`~.node_tasks.check_task`) on each node that may take a task (it
    has a CPU): its ref, and the node as Ray lists it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(check_task)
    return {check.options(num_cpus=0, max_retries=3, retry_exceptions=False, scheduling_strategy=(
        NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))).remote(render, devices_here): node
        for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0}


def _checked(ray, render, ours: dict[str, str]) -> list[NodeCheck]:
    """Every node's check, waited for: what each can run, or RenderError naming the first
    node that cannot read a path, or renders with anything else than this machine."""
    found = []
    for ref, node in _checks(ray, render).items():
        try:
            checked = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            raise RenderError(_cause(e)) from None
        except ray.exceptions.RayError:  # the node went: it takes no task either
            continue
        if checked.unreadable:
            raise RenderError(cannot_read(checked.node, checked.unreadable[0]))
        if problem := _disagreement(checked.node, ours, checked.environment):
            raise RenderError(problem)
        resources = node.get("Resources", {})
        found.append(NodeCheck(checked.node, cpus=resources.get("CPU", 0), gpus=resources.get("GPU", 0),
                               cuda=checked.cuda, asks=checked.asks))
    return found


def _show(bar: tqdm, n: int) -> None:
    bar.n = n
    bar.refresh()


def _shared_folder(work: WorkFolder) -> tuple[str, str] | None:
    """The work folder and its probe's token, for workers that see it to write their parts
    there (None: every part comes through the driver)."""
    return work.share()


class _Driver:
    """Has the film planned (``planners`` pieces at once) and hands the parts out as they
    become known (:class:`~.scheduling.Schedule`, to as many workers as ``where`` has slots,
    with as many tasks again waiting in Ray's queue), takes the tasks' objects as they come
    and stores the parts, and hands out again what a lost task had not sent."""

    def __init__(self, ray, render: Render, work: WorkFolder, task, counter, shared: tuple[str, str] | None,
                 where: Placement, environment: dict[str, str]) -> None:
        self.ray, self.render, self.work, self.task, self.counter, self.shared = ray, render, work, task, counter, shared
        self.environment = environment
        self.limit = 2 * max(1, where.slots)
        self.schedule = Schedule(0, max(1, where.slots))
        self.attempts: dict[tuple, int] = {}  # parts of lost tasks handed out again: the attempt
        self.report = FarmReport({}, [], where=where)
        self.running: dict[object, Task] = {}
        self.incoming: dict[int, Incoming] = {}

    def run(self, planning: Planning, plan, planners: int, progress) -> FarmReport:
        """Plan (``plan(piece)`` submits a piece's task) and render."""
        ray, schedule = self.ray, self.schedule
        schedule.left = sum(b - a + 1 for a, b, _, _ in planning.pieces) + frames_in(schedule.ready)
        pieces = deque(enumerate(planning.pieces))
        planned: dict[object, int] = {}  # planning tasks running: their piece
        if not pieces:
            schedule.planned()
        received, shown = 0, 0.0
        try:
            while pieces or planned or schedule.queue or schedule.ready or self.running:
                while pieces and len(planned) < planners:
                    index, piece = pieces.popleft()
                    planned[plan(piece)] = index
                while len(self.running) < self.limit and (group := schedule.next()) is not None:
                    self._start(Task(group, self.attempts.pop(tuple(group), 1)))
                ready, _ = ray.wait([*planned, *self.running], num_returns=1, timeout=0.5)
                for ref in ready:
                    if ref in planned:
                        try:
                            firsts = ray.get(ref)
                        except ray.exceptions.RayTaskError as e:
                            raise RenderError(_cause(e)) from None
                        schedule.known(planning.done(planned.pop(ref), firsts))
                        if planning.finished:
                            schedule.planned()
                    else:
                        received += self._next(ref)
                if time.monotonic() - shown > 0.5:
                    progress(received)
                    shown = time.monotonic()
            progress(received)
        except BaseException:
            for ref in [*planned, *self.running]:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            for incoming in self.incoming.values():
                incoming.discard()
            raise
        return self.report

    def _start(self, task: Task) -> None:
        self.running[self.task.remote(self.render, task.group, self.counter, time.time(), self.shared)] = task

    def _next(self, stream) -> int:
        """Take the next object of a task's stream; the frames it completes."""
        ray, task = self.ray, self.running[stream]
        try:
            ref = next(stream)
        except StopIteration:
            self._ended(stream, task)
            return 0
        began = time.perf_counter()
        try:
            item = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # raised by our code: running it again fails again
            raise RenderError(_cause(e)) from None
        except ray.exceptions.RayError as e:  # a machine, a worker process or an object lost
            self._ended(stream, task, lost=_cause(e))
            if task.attempt > RETRIES:
                raise RenderError(f"a task was lost {task.attempt} times, the last time: {task.lost}") from None
            if task.rest():
                self.schedule.again(task.rest())
                self.attempts[tuple(task.rest())] = task.attempt + 1
            return 0
        frames = self._take(task, item)
        if isinstance(item, (Chunk, Part)):
            self.report.storing += time.perf_counter() - began
            self.report.parts += isinstance(item, Part)
        return frames

    def _take(self, task: Task, item: object) -> int:
        """Store what a task sent; the frames it completes."""
        if isinstance(item, Started):
            task.node, task.waited, task.built = item.node, item.waited, item.built
            if problem := _disagreement(item.node, self.environment, item.environment):
                raise RenderError(problem)
            self.work.settle("colorize", item.fingerprints, where=f" (of {item.node})")
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
                    raise RenderError(f"a part of {task.node} came with {incoming.size} bytes, not {item.size}")
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
                              f"{task.rest()[-1][1]}")
        self.report.tasks.append(task)


def _disagreement(node: str, ours: dict[str, str], theirs: dict[str, str]) -> str | None:
    """One line naming the first thing ``node`` renders with differently from this machine."""
    for item, mine, other in differences(ours, theirs):
        if item == "vsexcolor":
            return (f"node {node} runs other vsexcolor code ({other or 'none'}) than this machine ({mine}): every "
                    "machine must run the same vsexcolor, installed from the same release or checkout")
        if item.startswith("file "):
            return (f"node {node} reads {item[5:]} as {other or 'nothing'}, this machine as {mine or 'nothing'}: "
                    "every machine must read the same files at the same paths")
        return (f"node {node} has {item} {other or 'missing'}, this machine {mine or 'missing'}: every machine must "
                "run the same versions")
    return None



def _count(ray, counter, fallback: int) -> int:
    try:
        return ray.get(counter.total.remote(), timeout=1)
    except Exception:  # the counter's node is gone: the bar counts finished tasks only
        return fallback


def _ray():
    return cluster.ray_module()


def _cause(error: Exception) -> str:
    """A task's failure in one line: ours as we said it; another exception a task raised by
    the last line of its message; Ray's own (a lost worker, memory) by its first line, since
    the lines after it are advice."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, RenderError):
        return str(cause)
    text = str(cause or error).strip().splitlines()
    if not text:
        return type(cause or error).__name__
    return text[-1] if cause is not None else text[0]
