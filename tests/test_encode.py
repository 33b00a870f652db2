"""The output codecs: the same frames give the same bytes, in any process, whatever it did before."""
from __future__ import annotations

import ctypes
import random
from pathlib import Path

import pytest

from clips import decode_rgb, sample_clip_path
from media import write_video
from vsexcolor.render import encode, video


def encoded(clip, info: video.VideoInfo, codec: str, path: Path) -> bytes:
    clip, pix_fmt = encode.encodable(clip, encode.CODECS[codec])
    encoder = encode.Encoder(path, encode.CODECS[codec], None, pix_fmt, info, 0, clip.get_frame(0))
    for n, frame in enumerate(clip.frames()):
        encoder.write(frame, n)
    encoder.close()
    return path.read_bytes()


def scribble_over_freed_memory(seed: int) -> None:
    """Leaves the C heap's free blocks full of bytes that are not zero, as a long-running
    process (a farm worker, a preview) leaves them."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    chance = random.Random(seed)
    blocks = []
    for _ in range(3000):
        size = chance.choice([64, 1024, 16384, 65536, 200_000, 345_600, 86_477])
        block = libc.malloc(size)
        libc.memset(block, chance.randrange(1, 256), size)
        blocks.append(block)
    chance.shuffle(blocks)
    for block in blocks:
        libc.free(block)


@pytest.mark.parametrize("codec", sorted(encode.CODECS))
def test_the_same_frames_give_the_same_bytes_whatever_the_process_left_in_memory(codec, tmp_path):
    # x264's AVX-512 code read memory it never wrote: at this size, 12 of 12 encodes after a
    # scribble came out as other bytes (vsexcolor/render/encode.py).
    source = write_video(tmp_path / "source.mp4", decode_rgb(sample_clip_path("bikes"), 20, (720, 480)))
    info = video.probe(source, progress=False)
    clip = video.open_clip(info)
    first = encoded(clip, info, codec, tmp_path / "first.mp4")
    for seed in range(3):
        scribble_over_freed_memory(seed)
        assert encoded(clip, info, codec, tmp_path / f"after-scribble-{seed}.mp4") == first, seed
