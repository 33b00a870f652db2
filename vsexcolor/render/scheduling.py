"""Which frames each farm task gets, without Ray: the film planned in pieces
(:class:`Planning`), the parts handed out as they become known (:class:`Schedule`), runs of
parts cut to shrinking shares (:func:`balance`), and the size of a planning piece
(:func:`piece_size`), and which device the tasks run on (:func:`placement`). The farm (:mod:`.farm`) plays these rules on Ray; the scale model in
benchmarks/scale.py plays them in simulated time.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .pipeline import RenderError, frames_in

#: Frames a planning task reads at least: its first frame's scene start is looked for
#: again by each, so pieces much shorter than a scene would repeat that work.
PLAN_PIECE = 100


def balance(parts: list[tuple[int, int]], slots: int) -> list[list[tuple[int, int]]]:
    """Runs of consecutive ``parts`` as tasks of decreasing length, the longest first: each
    takes about 1/(GUIDE x ``slots``) of the frames not yet given to one (at least a part),
    so that the first tasks are long and the last ones short, and the workers finish within
    a short task of each other. A part is never split: it is a scene, which starts from
    nothing; a scene longer than its share is a task of its own, and goes out first."""
    left = frames_in(parts)
    groups: list[list[tuple[int, int]]] = [[]]
    for a, b in parts:
        if groups[-1] and (a != groups[-1][-1][1] + 1 or frames_in(groups[-1]) + b - a + 1 > _share(left, slots)):
            left -= frames_in(groups[-1])
            groups.append([])
        groups[-1].append((a, b))
    return sorted((g for g in groups if g), key=frames_in, reverse=True)


#: A task takes 1/(GUIDE x slots) of the frames left (guided self-scheduling).
GUIDE = 2


def _share(left: int, slots: int) -> int:
    return max(1, left // (GUIDE * max(1, slots)))


class Planning:
    """The parts of the runs of frames ``todo`` as planning pieces come back.

    The runs are cut into pieces of ``size`` frames (:attr:`pieces`: first, last, the first
    and last frames of the run), each planned by a task of its own (where parts start in it,
    :func:`~vsexcolor.render.pipeline.part_firsts`), in any order; :meth:`done` gives the parts made
    known by a piece: those whose first and last frames are both known, which a part is once
    the pieces from its first frame to the one after its last are in (a part ends where the
    next starts). A slow piece (one inside a long scene looks back to its start) holds up
    only the parts around it."""

    def __init__(self, todo: list[tuple[int, int]], size: int) -> None:
        self.pieces = [(a, min(a + size - 1, b), first, b) for first, b in todo for a in range(first, b + 1, size)]
        self._firsts: dict[int, list[int]] = {}  # the pieces done: where parts start in them
        self._given: set[int] = set()  # the first frames of the parts given

    def done(self, piece: int, firsts: list[int]) -> list[tuple[int, int]]:
        self._firsts[piece] = firsts
        lo = hi = piece  # the pieces done around it, in its run
        while lo - 1 in self._firsts and self.pieces[lo - 1][2] == self.pieces[piece][2]:
            lo -= 1
        while hi + 1 in self._firsts and self.pieces[hi + 1][2] == self.pieces[piece][2]:
            hi += 1
        starts = [n for i in range(lo, hi + 1) for n in self._firsts[i]]
        ends = [n - 1 for n in starts[1:]]
        if self.pieces[hi][1] == self.pieces[hi][3]:  # the block ends its run: so does its last part
            ends.append(self.pieces[hi][1])
        known = [(a, b) for a, b in zip(starts, ends) if a not in self._given]
        self._given.update(a for a, _ in known)
        return known

    @property
    def finished(self) -> bool:
        return len(self._firsts) == len(self.pieces)


class Schedule:
    """Which parts a free worker gets next: the farm's rule, without Ray (the scale model
    in benchmarks/scale.py plays it too).

    Parts are handed out as they become known (:meth:`known`), so that rendering starts
    while the rest of the film is still being planned: a free worker gets the consecutive
    known parts at the head of the film, up to its share (:func:`balance`'s). Once every part
    is known (:meth:`planned`), the rest are cut by :func:`balance`, the longest first. The
    parts of a lost task that were not received go out again before anything else
    (:meth:`again`)."""

    def __init__(self, frames: int, slots: int) -> None:
        self.left, self.slots = frames, slots
        self.ready: list[tuple[int, int]] = []  # known, not handed out, in film order
        self.queue: deque[list[tuple[int, int]]] = deque()

    def known(self, parts: list[tuple[int, int]]) -> None:
        self.ready = sorted(self.ready + parts)

    def planned(self) -> None:
        self.queue.extend(balance(self.ready, self.slots))
        self.ready = []

    def again(self, parts: list[tuple[int, int]]) -> None:
        self.queue.appendleft(parts)
        self.left += frames_in(parts)

    def next(self) -> list[tuple[int, int]] | None:
        if self.queue:
            group = self.queue.popleft()
        elif self.ready:
            share, group = _share(self.left, self.slots), [self.ready[0]]
            while (len(group) < len(self.ready) and self.ready[len(group)][0] == group[-1][1] + 1
                   and frames_in([*group, self.ready[len(group)]]) <= share):
                group.append(self.ready[len(group)])
            del self.ready[:len(group)]
        else:
            return None
        self.left -= frames_in(group)
        return group


def piece_size(frames: int, planners: int) -> int:
    """Frames a planning piece reads: about a quarter of each planner's share, so that the
    first parts are known early, but at least PLAN_PIECE."""
    return max(PLAN_PIECE, -(-frames // (4 * max(1, planners))))


@dataclass(frozen=True)
class NodeCheck:
    """A node as its check found it (:func:`~vsexcolor.render.node_tasks.check_task`):
    ``cpus`` and ``gpus``, what Ray counts there; ``cuda``, the CUDA devices torch sees
    there; ``asks``, the devices ("cpu", "cuda") the render's ``colorize`` calls resolve to
    there (``auto`` is CUDA where torch sees a GPU)."""

    name: str
    cpus: float
    gpus: float
    cuda: int
    asks: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    """Where the render's tasks run: on GPUs (``gpu``: a GPU and a CPU each, so one task a
    GPU, on the nodes that have them) or on CPUs (one task a CPU); ``slots``: tasks at once."""

    gpu: bool
    slots: int


def placement(nodes: list[NodeCheck]) -> Placement:
    """The render's placement, from what each node resolves its device to: on the GPUs where
    any node renders on CUDA (the nodes without one then only plan, so that every part
    comes from the same device), else on the CPUs. Raises RenderError (one line) where no
    node can run that."""
    if not nodes:
        raise RenderError("no node of the Ray cluster takes tasks (none has a CPU): join one with "
                          "`ray start --address HEAD:PORT`")
    if not any("cuda" in n.asks for n in nodes):
        cpus = int(sum(n.cpus for n in nodes))
        if not cpus:  # fractional CPUs: no task of one CPU would ever start
            raise RenderError(f"the nodes of the Ray cluster have {sum(n.cpus for n in nodes):g} CPUs between them, "
                              "and a task takes one: start Ray with --num-cpus 1 or more")
        return Placement(gpu=False, slots=cpus)
    for n in nodes:
        if "cuda" in n.asks and n.cuda and not n.gpus:  # Ray would hold its tasks forever
            raise RenderError(f"node {n.name} has {n.cuda} GPU{'s' if n.cuda > 1 else ''} that Ray does not count, "
                              f"and the render runs on it there: start Ray on it with --num-gpus {n.cuda}, or render "
                              "with --device cpu")
        if "cuda" not in n.asks and n.gpus:  # Ray would send it GPU tasks, which would render on its CPU
            raise RenderError(f"node {n.name} has {n.gpus:g} GPU{'s' if n.gpus != 1 else ''} that Ray counts and torch "
                              "does not see there, so its parts would come from the CPU and the others' from CUDA: "
                              "start Ray on it with --num-gpus 0, or make torch see its GPUs (a CUDA build of torch)")
    slots = int(sum(n.gpus for n in nodes if "cuda" in n.asks and n.cuda))
    if not slots:
        raise RenderError("the render asks for device cuda and no node of the cluster has a GPU: render with "
                          "--device auto or cpu, or add a node with a GPU")
    return Placement(gpu=True, slots=slots)
