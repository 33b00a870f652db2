"""Giving memory that was freed back to the system during long renders, and keeping large
blocks out of glibc's heap."""
from __future__ import annotations

import ctypes
import functools
import gc
import sys
from collections.abc import Callable


def _glibc(name: str, *argtypes: type) -> Callable[..., int] | None:
    """glibc's function ``name`` (returning an int), or None where the C library has none
    (not Linux, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)  # the C library the process runs on
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    return _glibc("malloc_trim", ctypes.c_size_t)


#: Bytes from which glibc gives a block pages of its own, returned when it is freed
#: (:func:`map_large_allocations`): 1 MiB, a 320x180 frame's float planes (0.7 MiB) stay
#: in the heap, an exemplar's (25 MiB at 1920x1080) and a 1080p frame's (6 MiB) do not.
LARGE_BLOCK = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    return _glibc("mallopt", ctypes.c_int, ctypes.c_int)


def map_large_allocations() -> bool:
    """Have glibc map every block of :data:`LARGE_BLOCK` bytes or more on its own, for the
    rest of this process, so that freeing it returns it to the system; False where the C
    library has no ``mallopt`` (nothing changes).

    glibc starts so at 128 KiB, but each such block freed raises that bound to its size (up
    to 32 MiB): after the first 1920x1080 exemplar is read and converted, pictures and
    tensors of that size come from the heap, where threads leave it in pieces no later
    block fits. ``vsexcolor colorize --refs`` on a 1500-shot film with such exemplars kept
    600 MiB of freed heap (``benchmarks/shots_memory.py``). Naming the bound ends the rise.
    For processes that render (the commands, a farm's tasks), not the filter: a script's
    process is its user's.
    """
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK) == 1


def release_freed_memory() -> None:
    """Return the free pages inside glibc's heap to the system.

    A render allocates and frees frames and tensors of many sizes on several threads, and
    glibc's heap fragments: in a render of ``propagate`` at 640x360 the memory in use stayed
    at about 270 MiB while the free memory the heap kept grew by about 1 MiB per frame (RSS
    4.2 GB after 4096 frames). ``malloc_trim`` hands those pages back; the address space
    stays reserved, which costs nothing. A call goes over all the heap's free memory, too
    much work for every frame: the filter calls it every ``RELEASE_EVERY`` outputs
    (:mod:`vsexcolor.filter.frame_requests`). Elsewhere nothing happens.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def release_garbage() -> None:
    """Free now what only reference cycles hold (a clip of the filter's: its frame callbacks
    hold their nodes), then hand the freed memory back (:func:`release_freed_memory`).
    Python's collector visits old objects seldom, and a clip's cycle may hold its source's
    decoder, threads and frame cache."""
    gc.collect()
    release_freed_memory()
