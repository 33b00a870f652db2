"""Every frame of a colorize render asked for at once, in a shuffled order, on one
VapourSynth thread: a script, run in a process of its own, since a render that hangs
cannot be stopped inside the test's process.

``python all_at_once.py SEED``: a 70-frame clip (a 40-frame pan, a cut, 30 frames of
another scene) coloured from automatic keyframes a quarter to one second apart, from its
own colour frames. Prints "same bytes" and exits 0 where the frames match an in-order
render; exits 1 where they differ, 2 where they do not come within a minute.
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import vapoursynth as vs

import vsexcolor
from clips import decode_rgb, frame_bytes, render, sample_clip_path, yuv_clip

core = vs.core


def clip() -> tuple[vs.VideoNode, vs.VideoNode]:
    """The gray clip and its colour frames."""
    wide = decode_rgb(sample_clip_path("bikes"), 1, (320, 192))[0]
    pan = np.stack([wide[40:136, 2 * t:2 * t + 128] for t in range(40)])
    other = decode_rgb(sample_clip_path("bigbuckbunny"), 30, (128, 96))
    colour = yuv_clip(np.concatenate([pan, other]), vs.YUV444P8)
    gray = core.std.ShufflePlanes([colour, core.std.BlankClip(colour, color=[128, 128, 128])], [0, 1, 2], vs.YUV)
    return gray, colour


def colorized(gray: vs.VideoNode, colour: vs.VideoNode) -> vs.VideoNode:
    return vsexcolor.colorize(gray, keyframe_clip=colour, keyframe_gaps=(0.25, 1.0), pixels=1024,
                              backend="propagate")


def main(seed: int) -> int:
    core.num_threads = 1
    gray, colour = clip()
    order = list(range(gray.num_frames))
    random.Random(seed).shuffle(order)
    out = colorized(gray, colour)
    futures = [out.get_frame_async(n) for n in order]
    try:
        got = {n: frame_bytes(f.result(timeout=60)) for n, f in zip(order, futures)}
    except TimeoutError:
        print("hung: the frames did not come within a minute", flush=True)
        os._exit(2)  # the render's threads wait for good: do not wait for them to end
    expected = render(colorized(gray, colour), range(gray.num_frames))
    differ = [n for n in order if got[n] != expected[n]]
    print(f"frames {differ} differ from an in-order render" if differ else "same bytes", flush=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
