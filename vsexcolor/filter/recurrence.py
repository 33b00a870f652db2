"""The recurrence engine: exact, order-independent colorization of a frame sequence.

Output n is a pure function of the frames from its segment's start s(n) to n, the reference
in force and the parameters. The engine computes it by stepping the backend's recurrent
part from the nearest state it still holds: the last frame it computed, a cached output or
a sparse checkpoint (every ``checkpoint_every`` frames of a segment), else the segment start.

Byte-identical results under any request order need identical arithmetic, not just the
same formula: the non-recurrent part runs on batches whose membership is fixed by position
(frames s + kB .. s + kB + B - 1), so a frame is always computed in the same batch, and
the fed-back state is kept in float32 exactly as first computed.

The non-recurrent part of the next batch runs on a worker thread while the current batch is
stepped, so a backend's ``correspond`` must be safe beside its ``step``; what it returns
does not depend on where it ran.

Memory is bounded by the cache sizes, never by the clip length.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from ..backends.base import Backend, Correspondence
from .scenes import Scenes, Segment

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        return None

    def put(self, key: K, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def keys(self) -> list[K]:
        return list(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def pop(self, key: K) -> V | None:
        return self._d.pop(key, None)

    def peek(self, key: K) -> V | None:
        """The value without counting a use: one dict lookup, safe without the owner's lock."""
        return self._d.get(key)


@dataclass(frozen=True)
class Reference:
    """A reference as the engine needs it.

    ``lab``: [1, 3, H', W'] Lab at the reference size; ``initial``: the segment's initial
    state as [1, 3, h, w] Lab at the internal frame size (propagation mode), or None.
    """

    lab: torch.Tensor
    initial: torch.Tensor | None = None


@dataclass(frozen=True)
class EngineConfig:
    """Sizes of the engine's work and memory.

    batch: frames per correspondence batch (1..64).
    cache_frames: finished outputs kept (>= 1).
    checkpoint_every: frames between checkpoints of the state within a segment (>= 1).
    checkpoints: checkpoints kept (>= 1), least recently used dropped first. While a
        segment's checkpoints are held (``checkpoints x checkpoint_every`` frames of
        history), a seek into it costs at most ``checkpoint_every`` steps; otherwise at
        most its distance from the segment start.
    """

    batch: int = 4
    cache_frames: int = 32
    checkpoint_every: int = 25
    checkpoints: int = 128

    @property
    def lookahead(self) -> int:
        """Frames past the one being stepped whose L the engine may read: the rest of its
        batch and the whole next batch, which is worked out in the background."""
        return 2 * self.batch - 1


class Recurrence:
    """Drives a :class:`~vsexcolor.backends.base.Backend` over a clip.

    Args:
        backend: the colorization backend.
        scenes: frame -> segment.
        luma: ``luma(n)`` -> [1, 1, h, w] L (0..100) of frame n at the internal size; must
            be a pure function of n, called only from threads that call :meth:`ab`. The
            engine reads up to ``config.lookahead`` frames ahead of the frame it steps,
            keeps none and asks for a frame's L more than once (its batch, its step, the
            next frame's state), so the source caches its last few conversions (the
            filter's does).
        reference: ``reference(segment)`` -> :class:`Reference` for that segment; called for
            every run of steps, so it keeps what it converts. Segments of one
            ``Segment.source`` must have the same ``lab``.
        config: batch and cache sizes.
    """

    def __init__(self, backend: Backend, scenes: Scenes, luma: Callable[[int], torch.Tensor],
                 reference: Callable[[Segment], Reference], config: EngineConfig = EngineConfig()) -> None:
        self.backend = backend
        self.scenes = scenes
        self.config = config
        self.luma = luma
        self._reference_source = reference
        self._lock = threading.RLock()
        self._prepared: LRU[tuple, Any] = LRU(2)
        self._batch: LRU[tuple, Future[Correspondence]] = LRU(2)
        # One worker: batches are done in the order they are asked for.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="vsexcolor-correspond")
        self._outputs: LRU[int, torch.Tensor] = LRU(config.cache_frames)
        # Their correspondences' confidence, which the fusion of two passes asks for once
        # the batch that worked it out is gone.
        self._confidences: LRU[int, torch.Tensor] = LRU(config.cache_frames)
        self._checkpoints: LRU[int, torch.Tensor] = LRU(config.checkpoints)
        self._current: tuple[int, torch.Tensor] | None = None
        #: Frames stepped since creation (to measure how much work requests cost).
        self.steps = 0

    def ab(self, n: int, state: tuple[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, Segment]:
        """[1, 2, h, w] ab (float32) of frame n at the internal size, and its segment.

        ``state``: (k, output k's ab exactly as this method returned it), held by the caller,
        to resume from if it is the nearest (the engine may have dropped it).
        """
        if state is not None:
            state = (state[0], state[1].to(self.backend.device))
        with self._lock:
            segment = self.scenes.segment(n)
            done = state[1] if state is not None and state[0] == n else self._outputs.get(n)
            if done is not None:
                return done, segment
            k, ab = self._resume_point(n, segment, state)
            ref, prepared = self._prepare(segment)
            last = ref.initial if k < segment.start else torch.cat((self.luma(k), ab), 1)
            for i in range(k + 1, n + 1):
                L = self.luma(i)
                corr = self._correspondence(i, segment, prepared)
                ab = self.backend.step(L, corr, last)
                last = torch.cat((L, ab), 1)
                self._keep(i, segment, ab, corr.confidence)
            return ab, segment

    def confidence(self, n: int) -> torch.Tensor:
        """[1, 1, h, w] confidence of frame n's correspondence to its segment's reference
        (the backend's scale, higher is surer): from the batch just stepped where it is still
        held, else worked out again (the same batch, the same bytes)."""
        with self._lock:
            held = self._confidences.get(n)
            if held is not None:
                return held
            segment = self.scenes.segment(n)
            _, prepared = self._prepare(segment)
            return self._correspondence(n, segment, prepared).confidence

    def close(self) -> None:
        """Stop the worker thread; batches not started are dropped. The engine must not be
        used afterwards."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    def held(self, n: int, within: int) -> tuple[int, torch.Tensor] | None:
        """The latest output k in n - within .. n that the engine holds, within n's segment
        as far as it is known, as (k, ab); None if none.

        With :meth:`start_within`, a hint for planning which frames to fetch, given when a
        frame is requested: it takes no lock (a request must not wait for the frame being
        computed) and reads no frame. The engine may drop the output by the time n is
        computed; hand it back to :meth:`ab` then.
        """
        current = self._current
        for k in range(n, max(self._floor(n), n - within) - 1, -1):
            if current is not None and current[0] == k:
                return current
            # One dict lookup each: no LRU bookkeeping, which would need the lock.
            ab = self._outputs.peek(k)
            if ab is None:
                ab = self._checkpoints.peek(k)
            if ab is not None:
                return k, ab
        return None

    def start_within(self, n: int, within: int) -> bool:
        """Whether frame n's segment starts at most ``within`` frames before it, as far as
        known without reading frames (see :meth:`held`)."""
        return n - self._floor(n) < within

    def _floor(self, n: int) -> int:
        """A frame at or before n's segment start, known without reading frames."""
        start = self.scenes.known_start(n)
        return 0 if start is None else start

    def _resume_point(self, n: int, segment: Segment, state: tuple[int, torch.Tensor] | None
                      ) -> tuple[int, torch.Tensor | None]:
        """The latest held output in [segment.start, n) (the caller's ``state`` included),
        or (segment.start - 1, None)."""
        best: tuple[int, torch.Tensor | None] = (segment.start - 1, None)

        def consider(k: int, ab: torch.Tensor | None) -> None:
            nonlocal best
            # Frames between a segment's start and n belong to that segment, so any held
            # output in the range is a state of this very recurrence.
            if ab is not None and segment.start <= k < n and k > best[0]:
                best = (k, ab)

        if state is not None:
            consider(*state)
        if self._current is not None:
            consider(*self._current)
        for k in self._outputs.keys():
            consider(k, self._outputs.get(k))
        every = self.config.checkpoint_every
        k = segment.start + (n - 1 - segment.start) // every * every
        while k >= max(segment.start, best[0] + 1):
            consider(k, self._checkpoints.get(k))
            k -= every
        return best

    def _prepare(self, segment: Segment) -> tuple[Reference, Any]:
        # Segments of one reference share its prepared form; the initial state is the
        # segment's own (a keyframe starts only the segment at its frame).
        ref = self._reference_source(segment)
        prepared = self._prepared.get(segment.source)
        if prepared is None:
            prepared = self.backend.prepare(ref.lab)
            self._prepared.put(segment.source, prepared)
        return ref, prepared

    def _correspondence(self, i: int, segment: Segment, prepared: Any) -> Correspondence:
        size = self.config.batch
        first = segment.start + (i - segment.start) // size * size
        batch = self._submit(segment, first, prepared)
        if first + size < self.scenes.num_frames:
            # Worked out while this batch's frames are stepped: the two overlap on separate
            # cores, as VapourSynth runs a frame callback (and so the recurrence) on one
            # thread at a time.
            self._submit(segment, first + size, prepared)
        return batch.result()[i - first]

    def _submit(self, segment: Segment, first: int, prepared: Any) -> Future[Correspondence]:
        """The batch of frames from ``first`` on, handed to the worker thread unless it has been."""
        key = (segment.start, segment.source, first)
        batch = self._batch.get(key)
        if batch is None:
            # The batch may run past the segment's end (it is not known yet); those extra
            # frames are wasted work, but fixed membership keeps every frame's bytes fixed.
            # The frames are read here, on the caller's thread: only it may ask VapourSynth.
            last = min(first + self.config.batch, self.scenes.num_frames)
            frames = torch.cat([self.luma(j) for j in range(first, last)], 0)
            batch = self._worker.submit(self.backend.correspond, frames, prepared)
            self._batch.put(key, batch)
        return batch

    def _keep(self, i: int, segment: Segment, ab: torch.Tensor, confidence: torch.Tensor) -> None:
        self.steps += 1
        self._current = (i, ab)
        self._outputs.put(i, ab)
        self._confidences.put(i, confidence)
        if (i - segment.start) % self.config.checkpoint_every == 0:
            self._checkpoints.put(i, ab)
