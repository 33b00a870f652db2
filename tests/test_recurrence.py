"""The recurrence engine: outputs are a pure function of the segment's frames, whatever
the request order, and the work and memory a request costs are bounded."""
from __future__ import annotations

import random
import threading

import pytest
import torch

from vsexcolor.backends.base import Correspondence
from vsexcolor.filter.recurrence import EngineConfig, Recurrence, Reference
from vsexcolor.filter.scenes import Scenes, Segment


class ChaoticBackend:
    """A stand-in whose recurrence amplifies any difference in its state, like DEVC's."""

    name, multiple, device = "chaotic", 8, torch.device("cpu")

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    def prepare(self, reference_lab):
        return reference_lab.mean()

    def correspond(self, L, reference):
        self.batches.append(tuple(int(v) for v in L[:, 0, 0, 0]))
        return Correspondence(lab=L.expand(-1, 3, -1, -1) + reference, confidence=torch.sin(L))

    def step(self, L, corr, last):
        prev = torch.zeros_like(corr.lab[:, 1:]) if last is None else last[:, 1:]
        return torch.sin(3.7 * prev + corr.confidence + 0.01 * L)


class RendezvousBackend(ChaoticBackend):
    """Its step of frame 3 and its correspondence of the batch from frame 4 each wait (up to
    10 s) for the other to begin: an engine that does them one after the other fails."""

    def __init__(self) -> None:
        super().__init__()
        self.stepping_3, self.corresponding_4 = threading.Event(), threading.Event()

    def correspond(self, L, reference):
        if L[0, 0, 0, 0] == 4:
            self.corresponding_4.set()
            assert self.stepping_3.wait(10), "frame 3 was not stepped while the next batch was worked out"
        return super().correspond(L, reference)

    def step(self, L, corr, last):
        if L[0, 0, 0, 0] == 3:
            self.stepping_3.set()
            assert self.corresponding_4.wait(10), "the next batch was not worked out while frame 3 was stepped"
        return super().step(L, corr, last)


class FailingBackend(ChaoticBackend):
    """Its correspondence of the batch from frame 4 raises."""

    def correspond(self, L, reference):
        if L[0, 0, 0, 0] == 4:
            raise ValueError("no correspondence for frames 4..7")
        return super().correspond(L, reference)


def engine(num_frames=60, cuts=(), ref_starts=(0,), config=EngineConfig(batch=4, cache_frames=3,
                                                                         checkpoint_every=5, checkpoints=4),
           backend_type=ChaoticBackend):
    backend = backend_type()
    scenes = Scenes(num_frames, ref_starts, lambda n: n in cuts)
    luma = lambda n: torch.full((1, 1, 8, 8), float(n))  # noqa: E731 - the frame number, as L
    ref = lambda seg: Reference(lab=torch.full((1, 3, 8, 8), float(seg.reference)))  # noqa: E731
    return Recurrence(backend, scenes, luma, ref, config), backend


def outputs(eng: Recurrence, order) -> dict[int, bytes]:
    return {n: eng.ab(n)[0].numpy().tobytes() for n in order}


def test_any_request_order_gives_the_in_order_bytes():
    expected = outputs(engine()[0], range(60))
    assert len(set(expected.values())) == 60
    order = list(range(60))
    for seed in range(3):
        random.Random(seed).shuffle(order)
        assert outputs(engine()[0], order) == expected
    assert outputs(engine()[0], reversed(range(60))) == expected


def test_batches_are_fixed_by_position_from_the_scene_start():
    eng, backend = engine(num_frames=20, cuts={7})
    outputs(eng, [19, 3, 12])
    for batch in backend.batches:
        first = batch[0]
        start = 0 if first < 7 else 7
        assert (first - start) % 4 == 0 and batch == tuple(range(first, min(first + 4, 20)))


def test_the_next_batch_is_worked_out_while_this_batch_is_stepped():
    eng, _ = engine(num_frames=20, backend_type=RendezvousBackend)
    expected = outputs(engine(num_frames=20)[0], range(8))
    assert outputs(eng, range(8)) == expected


def test_an_in_order_pass_reads_no_further_ahead_than_the_lookahead():
    # The filter has VapourSynth bring along exactly these frames, so that it never reads
    # a frame synchronously in an in-order render.
    eng, _ = engine(num_frames=40)
    reads: list[int] = []
    luma = eng.luma
    eng.luma = lambda n: reads.append(n) or luma(n)
    furthest = 0
    for n in range(40):
        reads.clear()
        eng.ab(n)
        furthest = max(furthest, max(reads, default=n) - n)
    assert furthest == eng.config.lookahead == 7


def test_a_failing_batch_is_raised_by_the_frames_that_need_it_only():
    eng, _ = engine(num_frames=20, backend_type=FailingBackend)
    outputs(eng, range(4))  # while the batch from frame 4 failed on the worker
    for n in (4, 7):
        with pytest.raises(ValueError, match="frames 4..7"):
            eng.ab(n)


def test_a_cut_and_a_reference_change_restart_the_recurrence():
    eng, _ = engine(num_frames=30, cuts={10}, ref_starts=(0, 20))
    segments = [eng.ab(n)[1] for n in range(30)]
    assert segments == [Segment(0, 0)] * 10 + [Segment(10, 0)] * 10 + [Segment(20, 1)] * 10
    # The state does not leak across the cut: frame 10 equals a fresh recurrence started there.
    fresh, _ = engine(num_frames=30, cuts={10}, ref_starts=(0, 20))
    assert fresh.ab(10)[0].equal(eng.ab(10)[0])
    assert fresh.steps == 1


def test_a_seek_costs_at_most_checkpoint_every_steps_after_a_pass():
    # 12 checkpoints x 5 frames hold the whole 60-frame scene.
    eng, _ = engine(num_frames=60, config=EngineConfig(batch=4, cache_frames=3, checkpoint_every=5, checkpoints=12))
    outputs(eng, range(60))
    assert eng.steps == 60
    for n in (3, 59, 22, 41, 0):
        before = eng.steps
        eng.ab(n)
        assert eng.steps - before <= 5, n


def test_held_state_is_bounded_by_the_cache_sizes_not_the_clip_length():
    config = EngineConfig(batch=4, cache_frames=3, checkpoint_every=5, checkpoints=4)
    eng, _ = engine(num_frames=2000, config=config)
    for _ in range(2):
        outputs(eng, range(2000))
    assert len(eng._outputs) <= config.cache_frames
    assert len(eng._checkpoints) <= config.checkpoints
    assert len(eng._batch) <= 2


def test_a_state_handed_back_is_resumed_from_with_the_same_bytes():
    # The filter hands back outputs VapourSynth holds that the engine may have dropped.
    expected = outputs(engine()[0], range(30))
    eng, _ = engine()
    ab_7 = eng.ab(7)[0].clone()
    outputs(eng, [40, 41, 42, 43])  # the engine's memory of frame 7 is gone
    before = eng.steps
    assert eng.ab(10, state=(7, ab_7))[0].numpy().tobytes() == expected[10]
    assert eng.steps - before == 3
    # Output n itself is returned as it is; a state of another segment is ignored.
    assert eng.ab(7, state=(7, ab_7))[0].equal(ab_7)
    cut, _ = engine(cuts={9})
    before = cut.steps
    cut.ab(10, state=(7, ab_7))
    assert cut.steps - before == 2  # frames 9 and 10, from the scene start


def test_held_tells_which_output_is_held_near_a_frame_without_reading_frames():
    eng, _ = engine(num_frames=60, cuts={14})
    reads: list[int] = []
    luma = eng.luma
    outputs(eng, range(12))  # holds 9, 10, 11 and the checkpoints 0, 5, 10
    eng.luma = lambda n: reads.append(n) or luma(n)
    assert eng.held(11, 8)[0] == 11
    assert eng.held(16, 8)[0] == 11
    assert eng.held(22, 8) is None  # nothing from 14 on
    assert eng.held(22, 12)[0] == 11
    assert eng.held(3, 8)[0] == 0
    assert eng.start_within(6, 8) and not eng.start_within(40, 8)  # its start is not known yet
    assert reads == []
    eng.scenes.segment(16)  # finds the cut at 14, reading frames
    assert eng.held(16, 8) is None  # 11 is held, but before this segment's start
    assert eng.start_within(16, 8)
