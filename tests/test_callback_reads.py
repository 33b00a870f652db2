"""A frame a callback reads itself is read with none of its locks held, and the callback runs
again with the frame at hand."""
from __future__ import annotations

import threading

from vsexcolor.filter.callback_reads import outside_locks, read


class Clip:
    """Stands in for a clip: records, for each frame read, whether the lock was held then."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock, self.reads = lock, []

    def get_frame(self, n: int) -> str:
        self.reads.append((n, self.lock.locked()))
        return f"frame {n}"


def test_a_frame_a_callback_lacks_is_read_with_its_lock_released_and_the_callback_runs_again():
    lock = threading.Lock()
    clip, runs = Clip(lock), []

    def callback() -> tuple[str, str]:
        with lock:
            runs.append(1)
            return read(clip, 3), read(clip, 5)

    assert outside_locks(callback) == ("frame 3", "frame 5")
    assert clip.reads == [(3, False), (5, False)]  # each read once, the lock free
    assert len(runs) == 3  # the frames stay at hand over the runs


def test_outside_a_callback_a_frame_is_read_at_once():
    lock = threading.Lock()
    clip = Clip(lock)
    with lock:
        assert read(clip, 2) == "frame 2"
    assert clip.reads == [(2, True)]


def test_the_frames_at_hand_are_one_callback_s_own():
    clip = Clip(threading.Lock())
    assert outside_locks(lambda: read(clip, 1)) == outside_locks(lambda: read(clip, 1)) == "frame 1"
    assert clip.reads == [(1, False), (1, False)]  # not kept from one callback to the next
