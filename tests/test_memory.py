"""Memory does not grow with clip length: the engine keeps bounded caches only, and the
filter hands memory it freed back to the system. A freed node frees all it held, as
vspreview needs when it evaluates a script again on every reload."""
from __future__ import annotations

import gc
import os
import runpy
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
import vapoursynth as vs

import vsexcolor
import vsexcolor.filter.frame_requests
from vsexcolor.memory import release_freed_memory
from clips import decode_rgb, sample_clip_path, yuv_clip

pytestmark = pytest.mark.slow


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def settled_rss_mib() -> float:
    """RSS once garbage is collected and freed heap pages are handed back."""
    gc.collect()
    release_freed_memory()
    return rss_mib()


def vsexcolor_threads() -> set[threading.Thread]:
    gc.collect()
    return {t for t in threading.enumerate() if t.name.startswith("vsexcolor")}


def assert_flat(rss: list[float], what: str) -> None:
    """Within 5 MiB per round of where it was after the second round. A node that kept its
    state (the leak this guards against) added about 50 MiB a round at 640x360."""
    per_round = (rss[-1] - rss[1]) / (len(rss) - 2)
    assert per_round < 5, f"RSS grew by {per_round:.1f} MiB per {what}: {[round(r) for r in rss]}"


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
    samples = []
    for n, _ in enumerate(out.frames(prefetch=4), start=1):
        if n >= 128 and n % 16 == 0:
            samples.append((n, rss_mib()))
    # The trend, not two readings: RSS moves by +-20 MiB between hand-backs, flat or not.
    slope = np.polyfit(*zip(*samples), 1)[0]
    assert slope < 0.1, f"RSS grew by {slope:.2f} MiB per frame from frame 128 to 384: {samples}"


def test_the_filter_hands_freed_memory_back_every_32_outputs(monkeypatch):
    from vsexcolor.memory import _malloc_trim

    assert _malloc_trim() is not None, "glibc's malloc_trim is used on Linux"
    calls = []
    monkeypatch.setattr(vsexcolor.filter.frame_requests, "release_freed_memory", lambda: calls.append(1))
    frames = decode_rgb(sample_clip_path("bikes"), 8, (32, 32))
    out = vsexcolor.colorize(yuv_clip(frames) * 9, frames[0], backend="propagate", pixels=32 * 32)
    for n in range(out.num_frames):
        out.get_frame(n)
    assert len(calls) == 72 // 32


def test_a_planning_pass_hands_freed_memory_back_every_32_frames(monkeypatch):
    # vsexcolor shots and colorize --refs's shots check read a whole film through it.
    from vsexcolor.filter import nodes, recording

    calls = []
    monkeypatch.setattr(nodes, "release_freed_memory", lambda: calls.append(1))
    frames = decode_rgb(sample_clip_path("bikes"), 8, (32, 32))
    with recording(planning=True):
        out = vsexcolor.colorize(yuv_clip(frames) * 9, frames[0], backend="propagate", pixels=32 * 32)
    for _ in out.frames(close=True):
        pass
    assert len(calls) == 72 // 32


@pytest.mark.parametrize("backend", ["propagate", "devc"])
def test_a_freed_node_leaves_neither_memory_nor_threads_behind(backend, devc_weights):
    frames = decode_rgb(sample_clip_path("bikes"), 6, (640, 360))
    # devc at a small internal size keeps 20 rounds quick; its models and states are still
    # freed (or not) with the node, whatever their size.
    options = {"backend": "devc", "weights": devc_weights, "pixels": 128 * 72} if backend == "devc" \
        else {"backend": "propagate"}
    threads_before = vsexcolor_threads()
    rss = []
    for _ in range(20):
        out = vsexcolor.colorize(yuv_clip(frames), frames[0], **options)
        for n in range(4):
            out.get_frame(n)
        assert vsexcolor_threads() != threads_before, "the node's worker thread ran"
        del out
        rss.append(settled_rss_mib())
    assert_flat(rss, "freed node")
    assert vsexcolor_threads() == threads_before


RELOADED_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import vsexcolor
from clips import decode_rgb, sample_clip_path, yuv_clip

frames = decode_rgb(sample_clip_path("bikes"), 6, (640, 360))
vsexcolor.colorize(yuv_clip(frames), frames[0], backend="propagate").set_output()
"""


def test_a_script_reloaded_as_vspreview_does_keeps_rss_flat(tmp_path):
    script = tmp_path / "preview.vpy"
    script.write_text(RELOADED_SCRIPT.format(tests=os.path.dirname(__file__)))
    rss = []
    for _ in range(10):
        runpy.run_path(str(script), run_name="__vapoursynth__")
        out = vs.get_output(0).clip
        for n in (0, 1, 2, 5, 4):  # play, then seek and step back
            out.get_frame(n)
        del out
        vs.clear_outputs()
        rss.append(settled_rss_mib())
    assert_flat(rss, "reload")
    assert vsexcolor_threads() == set()


def test_a_references_folder_is_read_when_its_segments_need_it_and_not_held(tmp_path, monkeypatch):
    # A film's folder holds a reference a shot: held all at once, 1500 of 1920x1080 took
    # 50 GiB in every process that built the filter.
    import weakref

    from media import write_image
    from vsexcolor.filter import ref_inputs

    frames = decode_rgb(sample_clip_path("bikes"), 24, (64, 48))
    for n in range(0, 24, 2):
        write_image(tmp_path / f"{n:06d}.png", np.ascontiguousarray(frames[n][::-1]))  # exemplars: flipped
    read = []
    for reader in ("read_image", "read_reference"):  # what reads a reference's file, to sort it or to use it
        def watched(*args, original=getattr(ref_inputs, reader)):
            read.append(weakref.ref(picture := original(*args)))
            return picture

        monkeypatch.setattr(ref_inputs, reader, watched)

    def alive() -> int:
        gc.collect()
        return sum(r() is not None for r in read)

    out = vsexcolor.colorize(yuv_clip(frames), tmp_path, backend="propagate", pixels=64 * 48, scenes=False)
    assert len(read) == 12 and alive() == 0  # each read once to sort the folder, none kept
    for n in range(24):
        out.get_frame(n)
        assert alive() <= 3  # the references of the segments at hand (wiring.REFERENCES_HELD)
    assert len(read) == 12 + 12  # and each read again once its segment came


def test_a_film_with_a_reference_a_shot_leaves_vapoursynths_cache_empty(tmp_path):
    # Each frame of the film is asked for twice, a few outputs apart (the engine's window
    # and the output's luma). With a reference every few frames, VapourSynth's cache of the
    # film's node grew by about a frame per frame rendered (263 MiB of a 1500-shot 320x180
    # film), though BestSource caches what a seek needs below it and the engine keeps the
    # frames it reads itself.
    from media import write_image, write_video

    size = (160, 90)
    sources = [decode_rgb(sample_clip_path(name), 30, size) for name in ("bikes", "carphone_pristine")]
    shots = [np.clip(sources[k % 2][k % 24:k % 24 + 6] * (0.55 if k % 2 else 1.0), 0, 255).astype(np.uint8)
             for k in range(200)]  # fewer shots and the cache did not grow before the fix
    refs = tmp_path / "refs"
    refs.mkdir()
    for k, shot in enumerate(shots):  # keyframes (each shot's first frame in colour) and exemplars, in turn
        write_image(refs / f"{6 * k:06d}.png", shot[0] if k % 2 else cv2.resize(shot[0], (320, 180)))
    film = write_video(tmp_path / "film.mkv", np.concatenate(shots), codec="ffv1", audio=False)
    clip = vsexcolor.open_clip(vsexcolor.probe(film, progress=False))
    out = vsexcolor.colorize(clip, refs, backend="propagate", pixels=1024)
    vs.core.clear_cache()  # what the build read to sort the folder
    for _ in out.frames(close=True):
        pass
    frame_bytes = size[0] * size[1] * 3 // 2
    assert vs.core.used_cache_size < 100 * frame_bytes, \
        f"VapourSynth caches {vs.core.used_cache_size / frame_bytes:.0f} film frames' worth after the render"


#: After a block of 8 MiB is freed, is one of 2 MiB given pages of its own (returned when
#: freed), or taken from the heap? Prints "mapped" or "heap"; Linux with glibc >= 2.33.
HEAP_OR_MAPPED = """
import ctypes
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(8 << 20))
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(2 << 20)
print("mapped" if libc.mallinfo2().hblkhd - mapped >= 2 << 20 else "heap")
libc.free(block)
"""


def heap_or_mapped(before: str = "") -> str:
    """Run ``before``, then :data:`HEAP_OR_MAPPED`, in a fresh Python process."""
    done = subprocess.run([sys.executable, "-c", before + HEAP_OR_MAPPED], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def test_glibc_takes_a_large_block_from_the_heap_once_a_larger_one_was_freed():
    # What map_large_allocations undoes: glibc raises its bound to each mapped block freed.
    assert heap_or_mapped() == "heap"


def test_after_map_large_allocations_a_large_block_has_pages_of_its_own():
    assert heap_or_mapped("from vsexcolor.memory import map_large_allocations\n"
                          "assert map_large_allocations()\n") == "mapped"


def test_vsexcolor_colorize_keeps_large_blocks_out_of_the_heap(tmp_path):
    # A 1500-shot film with 1920x1080 exemplars kept 600 MiB of freed heap in the command
    # (benchmarks/shots_memory.py); a farm's tasks build their clip as the command does.
    from media import write_image, write_video

    frames = decode_rgb(sample_clip_path("bikes"), 4, (64, 48))
    film = write_video(tmp_path / "film.mkv", frames, codec="ffv1", audio=False)
    refs = tmp_path / "refs"
    refs.mkdir()
    write_image(refs / "000000.png", frames[0])
    argv = ["colorize", str(film), "--refs", str(refs), "-o", str(tmp_path / "out.mkv"), "--backend", "propagate",
            "--codec", "ffv1", "--size", "1024"]
    assert heap_or_mapped(f"from vsexcolor.commands import main\nassert main({argv!r}) == 0\n") == "mapped"
