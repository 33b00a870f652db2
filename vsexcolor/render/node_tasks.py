"""What a farm's nodes run (:mod:`.farm` hands them out): the check a node passes before
anything is rendered, the planning of a piece of the film, and the rendering of a run of
parts, sent back as the objects below (a task is a generator: see :mod:`.farm`).
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..memory import release_garbage
from .environment import environment
from .pipeline import Built, Render, RenderError, build, encode, fingerprint_dicts, part_firsts
from .workfolder import part_path, sees_probe, write_durably

#: Bytes of a part sent in one object (the most the driver holds of a part at once).
CHUNK = 32 << 20


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
    environment: dict[str, str] = field(default_factory=dict)  # see vsexcolor.render.environment


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
class Checked:
    """A node's check: its name, the paths it cannot read, and where it reads them all, its
    environment (:mod:`.environment`) and devices: ``cuda``, the CUDA devices torch sees
    there; ``asks``, the devices the render's ``colorize`` calls resolve to there."""

    node: str
    unreadable: list[Path]
    environment: dict[str, str] = field(default_factory=dict)
    cuda: int = 0
    asks: tuple[str, ...] = ()


def plan_task(render: Render, key: str, a: int, b: int, run_first: int) -> list[int]:
    """One planning task: where parts start in frames ``a``..``b``. The planning clip is
    built once per worker process and render (``key``), and kept for its next pieces until
    the worker renders (:func:`render_task`)."""
    if key not in _planning_clips:
        _planning_clips.clear()
        _planning_clips[key] = _built_on_node(render, planning=True)[1]
    return part_firsts(render, _planning_clips[key], a, b, run_first)


_planning_clips: dict[str, Built] = {}


def _node() -> str:
    """The machine a task runs on, as messages and the summary name it."""
    import ray

    return f"{socket.gethostname()} {ray.util.get_node_ip_address()} node {ray.get_runtime_context().get_node_id()[:8]}"


def _unreadable(render: Render) -> list[Path]:
    return [path for path in render.recipe.paths() if not os.access(path, os.R_OK)]


def cannot_read(node: str, path: Path) -> str:
    return (f"node {node} cannot read {path}: every machine must read the input, script, references and weights at "
            "the same path")


def check_task(render: Render, devices: Callable[[Render], tuple[int, tuple[str, ...]]]) -> Checked:
    """A node's check before anything is rendered or planned; ``devices``: :func:`devices_here`
    (a test's stand-in pretends a GPU)."""
    node, unreadable = _node(), _unreadable(render)
    if unreadable:
        return Checked(node, unreadable)
    return Checked(node, [], environment(render.codec, render.recipe.paths()), *devices(render))


def devices_here(render: Render) -> tuple[int, tuple[str, ...]]:
    """The CUDA devices torch sees on this node, and the devices ("cpu", "cuda") the render's
    ``colorize`` calls resolve to here, from its planning clip built here (``auto`` is CUDA
    where torch sees a GPU)."""
    import torch

    built = _built_on_node(render, planning=True)[1]
    return torch.cuda.device_count(), tuple(sorted({f.device for f in built.fingerprints}))


def _built_on_node(render: Render, planning: bool = False) -> tuple[str, Built]:
    """The render's clip built on the node a task runs on, and the node's name; what fails
    there (a path it cannot read, a script that fails) names the node."""
    node = _node()
    for path in _unreadable(render)[:1]:
        raise RenderError(cannot_read(node, path))
    # The clips of the tasks this worker ran before are garbage in reference cycles; each
    # holds the film's source, its decoder threads and cache, until collected.
    release_garbage()
    try:
        return node, build(render, planning)
    except RenderError as e:
        raise RenderError(f"node {node}: {e}") from None


def render_task(render: Render, group: list[tuple[int, int]], counter, submitted: float,
                 shared: tuple[str, str] | None) -> Iterator[Started | Chunk | Part | Finished]:
    """One task: the parts ``group`` (consecutive) rendered where Ray runs it, each given
    as soon as it is encoded (see the module's docstring)."""
    started = time.time()
    # A worker holds one clip of the film at a time. A planning clip kept beside the one
    # rendered doubled what a references folder costs a process (sorting it reads the frames
    # it names, into each clip's own source and cache): a worker's tasks on a 300-shot film
    # peaked at 1617 MiB with it and 1293 without (benchmarks/README.md, "Memory per shot").
    # A planning task after this one builds its clip again.
    _planning_clips.clear()
    node, built = _built_on_node(render)
    ready = time.time()
    yield Started(node, fingerprint_dicts(built), waited=started - submitted, built=ready - started,
                  environment=environment(render.codec, render.recipe.paths()))
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


class Counter:
    """Frames made across the cluster, for the progress bar (a task run again counts twice)."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def total(self) -> int:
        return self.frames

