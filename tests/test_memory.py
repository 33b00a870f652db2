"""Memory does not grow with clip length: the engine keeps bounded caches only, and the
filter hands memory it freed back to the system."""
from __future__ import annotations

import gc
import os

import pytest
import vapoursynth as vs

import vsexcolor
import vsexcolor.filter
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


def test_rss_stays_flat_over_a_long_render_at_a_real_size():
    # Frames and tensors of many sizes, allocated and freed on several threads, fragment
    # glibc's heap: at 640x360 the free memory it kept grew by about 1 MiB per frame
    # while the memory in use stayed flat, until the filter took to handing it back.
    frames = decode_rgb(sample_clip_path("bikes"), 32, (640, 360))
    out = vsexcolor.colorize(yuv_clip(frames) * 12, frames[0], backend="propagate")
    rss = {}
    for n, _ in enumerate(out.frames(prefetch=4), start=1):
        if n in (128, 384):
            rss[n] = rss_mib()
    assert rss[384] - rss[128] < 120, f"RSS grew by {rss[384] - rss[128]:.0f} MiB from frame 128 to 384"


def test_the_filter_hands_freed_memory_back_every_32_outputs(monkeypatch):
    from vsexcolor.memory import _malloc_trim

    assert _malloc_trim() is not None, "glibc's malloc_trim is used on Linux"
    calls = []
    monkeypatch.setattr(vsexcolor.filter, "release_freed_memory", lambda: calls.append(1))
    frames = decode_rgb(sample_clip_path("bikes"), 8, (32, 32))
    out = vsexcolor.colorize(yuv_clip(frames) * 9, frames[0], backend="propagate", pixels=32 * 32)
    for n in range(out.num_frames):
        out.get_frame(n)
    assert len(calls) == 72 // 32
