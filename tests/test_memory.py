"""Memory does not grow with clip length: the engine keeps bounded caches only."""
from __future__ import annotations

import gc
import os

import pytest
import vapoursynth as vs

import vsexcolor
from clips import decode_rgb, sample_clip_path, yuv_clip

pytestmark = pytest.mark.slow


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture
def small_vs_cache():
    # VapourSynth's own frame cache fills up to core.max_cache_size (gigabytes by default)
    # as frames are revisited; hold it small so the test sees vsexcolor's memory alone.
    core = vs.core
    saved = core.max_cache_size
    core.max_cache_size = 1
    yield
    core.max_cache_size = saved


def test_a_2000_frame_clip_rendered_twice_keeps_rss_flat(small_vs_cache):
    # The weight-free backend at the smallest size keeps 4000 renders quick; the caches
    # under test (engine, filter) are the same for every backend.
    frames = decode_rgb(sample_clip_path("bikes"), 20, (32, 32))
    clip = yuv_clip(frames) * 100
    assert clip.num_frames == 2000
    out = vsexcolor.colorize(clip, frames[0], backend="propagate", pixels=32 * 32,
                             cache_frames=8, checkpoints=16)

    def render() -> None:
        for n in range(clip.num_frames):
            out.get_frame(n)
        gc.collect()

    render()
    after_first = rss_mib()
    render()
    growth = rss_mib() - after_first
    # A leak of even one small tensor per frame (about 10 KB here) would add 20 MB.
    assert growth < 20, f"RSS grew by {growth:.1f} MiB over a second 2000-frame pass"
