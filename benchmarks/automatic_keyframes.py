"""Automatic keyframes placed by the filter itself (issue #34's second target, and their cost).

Each bundled clip, gray as its Y' (BT.709 limited-range GRAY8), coloured by
``colorize(gray, keyframe_clip=colour)``: the clip's own colour frames are the keyframe
source, a perfect keyframe colorizer, so that only where the keyframes lie and how colour is
carried between them is measured. ``backend="propagate"``, ``direction="both"``, the default
pick. Two renders a clip: at the default ``keyframe_gaps`` (several keyframes a long shot)
and with ``keyframe_gaps=None`` (one a shot). Printed per clip: the keyframes and the
budget the issue allows (one a shot plus one per 60 frames), keyframes per minute, PSNR on
float RGB (scikit-image, against the original) over the frames that are not keyframes, the
drift of each shot of 40 frames or more (mean PSNR of its first 10 non-keyframe frames minus
its last 10), and wall seconds of the render (every frame in order) and of a planning pass
(``vsexcolor shots``' way of finding the keyframes), on this machine's CPU.

    .venv/bin/python benchmarks/automatic_keyframes.py
    .venv/bin/python benchmarks/automatic_keyframes.py --start 120   # frames the rule was not tuned on
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import decode_rgb, sample_clip_path, yuv_clip  # noqa: E402

import vsexcolor  # noqa: E402
from vsexcolor.eval.metrics import psnr  # noqa: E402
from vsexcolor.filter import PROP_KEYFRAME, PROP_SHOT_START, recording  # noqa: E402
from vsexcolor.filter.formats import colour_props, frame_rgb  # noqa: E402

core = vs.core
CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine")
LONG_SHOT, DRIFT_SPAN = 40, 10


def clip_frames(name: str, start: int, frames: int) -> tuple[np.ndarray, float]:
    rgb = decode_rgb(sample_clip_path(name), start + frames)[start:]
    with av.open(str(sample_clip_path(name))) as container:
        rate = container.streams.video[0].average_rate
    return np.ascontiguousarray(rgb), float(rate)


def run(rgb: np.ndarray, fps: float, gaps: object) -> dict:
    colour = core.std.AssumeFPS(yuv_clip(rgb), fpsnum=round(fps * 1000), fpsden=1000)
    gray = core.std.ShufflePlanes(colour, 0, vs.GRAY)
    kwargs = {"keyframe_clip": colour, "backend": "propagate", "keyframe_gaps": gaps}
    with recording(planning=True):
        planned = vsexcolor.colorize(gray, **kwargs)
    started = time.perf_counter()
    for _ in planned.frames(close=True):
        pass
    planning = time.perf_counter() - started
    out = vsexcolor.colorize(gray, **kwargs)
    props = colour_props(gray, gray.get_frame(0).props)
    rgb_out = core.resize.Bicubic(out, format=vs.RGBS, matrix_in=props["_Matrix"])
    started = time.perf_counter()
    frames, keys, shots = [], [], []
    for f in rgb_out.frames(close=True):
        frames.append(frame_rgb(f))
        keys.append(f.props[PROP_KEYFRAME])
        shots.append(f.props[PROP_SHOT_START])
    seconds = time.perf_counter() - started
    keyframes = sorted(set(keys))
    truth = rgb.astype(np.float32) / 255.0
    psnrs = {t: psnr(f, truth[t]) for t, f in enumerate(frames) if t not in keyframes}
    drifts = []
    for shot in sorted(set(shots)):
        scored = [t for t in range(len(frames)) if shots[t] == shot and t in psnrs]
        if shots.count(shot) >= LONG_SHOT:
            drifts.append(float(np.mean([psnrs[t] for t in scored[:DRIFT_SPAN]]) -
                                np.mean([psnrs[t] for t in scored[-DRIFT_SPAN:]])))
    return {"keyframes": keyframes, "shots": len(set(shots)), "psnr": float(np.mean(list(psnrs.values()))),
            "drifts": drifts, "seconds": seconds, "planning": planning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--start", type=int, default=0, help="first frame of each clip used")
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    print(f"frames {args.start}..{args.start + args.frames - 1} of each clip; propagate, direction both, "
          "keyframe_clip = the colour original")
    print(f"{'clip':20}{'gaps':>12}{'keys':>6}{'budget':>7}{'kf/min':>8}{'PSNR':>8}{'render s':>10}{'plan s':>8}"
          "  drift of each shot of 40+ frames (dB)")
    for name in args.clips:
        rgb, fps = clip_frames(name, args.start, args.frames)
        if len(rgb) < args.frames:
            print(f"{name:20}has {args.start + len(rgb)} frames: skipped")
            continue
        for gaps in ((1.6, 4.0), None):
            r = run(rgb, fps, gaps)
            budget = r["shots"] + len(rgb) // 60
            per_minute = len(r["keyframes"]) / (len(rgb) / fps / 60)
            drifts = " ".join(f"{d:+.2f}" for d in r["drifts"]) or "-"
            print(f"{name:20}{str(gaps):>12}{len(r['keyframes']):>6}{budget:>7}{per_minute:>8.1f}{r['psnr']:>8.2f}"
                  f"{r['seconds']:>10.1f}{r['planning']:>8.1f}  {drifts}", flush=True)


if __name__ == "__main__":
    main()
