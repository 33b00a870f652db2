"""What automatic keyframes cost: seconds per keyframe and peak memory of the DDColor
keyframe model, and their share of a whole render.

1. Per model (tiny = ConvNeXt-T, large = ConvNeXt-L), in a fresh process each: one keyframe
   of a 1920x1080 frame (the network at 512x512 plus the resizes and colour conversions),
   repeated, median and spread; peak resident memory of the process, and peak GPU memory on
   CUDA. The weights are random: the networks cost the same whatever their values.
2. A whole render of a bundled clip (bikes.mp4, 3 shots, at its own 640x272) with the
   weight-free backend, once with automatic keyframes and once with the same keyframes
   given as a clip (what the render costs without the model): the difference is the
   keyframes' share.

    .venv/bin/python benchmarks/keyframes.py
    .venv/bin/python benchmarks/keyframes.py --device cuda --repeat 5 --json keyframes.json
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the sample clips


def one_model(encoder: str, device: str, fp16: bool, repeat: int) -> dict:
    """Time keyframes of one model in this process."""
    import torch

    from vsexcolor.filter.keyframes import KeyframeColorizer
    from vsexcolor.models import DDColor

    dev = torch.device(device)
    colorizer = KeyframeColorizer(DDColor(encoder).eval(), dev, fp16=fp16)
    L = torch.rand(1, 1, 1080, 1920) * 100
    colorizer.rgb(L)  # warm-up: first-call allocations and kernel choices
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        colorizer.rgb(L)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return {"model": encoder, "device": device, "precision": "float16" if fp16 and dev.type == "cuda" else "float32",
            "threads": torch.get_num_threads(), "seconds": statistics.median(times),
            "spread": [min(times), max(times)], "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}


def whole_render(repeat: int) -> dict:
    """Seconds to render bikes.mp4 with automatic keyframes (DDColor-T) and with the same
    keyframes from a clip."""
    import numpy as np
    import torch
    import vapoursynth as vs

    import vsexcolor
    from clips import decode_rgb, sample_clip_path, yuv_clip
    from vsexcolor.filter import PROP_KEYFRAME
    from vsexcolor.filter.formats import colour_props
    from vsexcolor.filter.keyframes import KeyframeColorizer
    from vsexcolor.filter.luma import Luma
    from vsexcolor.models import DDColor

    core = vs.core
    frames = decode_rgb(sample_clip_path("bikes"), 10**6)
    clip = core.std.ShufflePlanes(yuv_clip(frames), 0, vs.GRAY)
    net = DDColor("tiny").eval()
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "ddcolor_paper_tiny.pth"
        torch.save({"params": net.state_dict()}, model)

        def render(ref, **kwargs) -> tuple[float, vs.VideoNode]:
            out = vsexcolor.colorize(clip, ref, backend="propagate", **kwargs)
            began = time.perf_counter()
            for _ in out.frames(close=True):
                pass
            return time.perf_counter() - began, out

        automatic, planned = [], None
        for _ in range(repeat):
            seconds, out = render(None, keyframe_model=model)
            automatic.append(seconds)
            planned = out
        picks = sorted({planned.get_frame(n).props[PROP_KEYFRAME] for n in range(clip.num_frames)})
        luma = Luma(clip, colour_props(clip, clip.get_frame(0).props))
        colorizer = KeyframeColorizer(net, torch.device("cpu"))
        coloured = {n: colorizer.rgb(luma.L(clip.get_frame(n))) for n in picks}
        stills = yuv_clip(np.stack([(coloured.get(n, coloured[picks[0]]) * 255).round().astype(np.uint8)
                                    for n in range(clip.num_frames)]))
        given = [render(stills)[0] for _ in range(repeat)]
    a, g = statistics.median(automatic), statistics.median(given)
    return {"clip": f"bikes.mp4, {clip.num_frames} frames, {clip.width}x{clip.height}", "keyframes": len(picks),
            "seconds_automatic": a, "seconds_given": g, "keyframe_share": (a - g) / a}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeat", type=int, default=3, help="keyframes (renders) timed per case (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_model(args.one[0], args.device, args.one[1] == "float16", args.repeat)))
        return
    precisions = ["float32", "float16"] if args.device.startswith("cuda") else ["float32"]
    rows = []
    for model in ("tiny", "large"):
        for precision in precisions:
            done = subprocess.run([sys.executable, __file__, "--device", args.device, "--repeat", str(args.repeat),
                                   "--one", model, precision], capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'model':6} {'device':7} {'precision':9} {'s/keyframe':>10} {'spread':>13} {'RSS MiB':>8} {'GPU MiB':>8}")
    for r in rows:
        gpu = "-" if r["gpu_mib"] is None else f"{r['gpu_mib']:.0f}"
        print(f"{r['model']:6} {r['device']:7} {r['precision']:9} {r['seconds']:10.2f} "
              f"{r['spread'][0]:6.2f}-{r['spread'][1]:<6.2f} {r['rss_mib']:8.0f} {gpu:>8}")
    share = whole_render(args.repeat)
    print(f"{share['clip']}, {share['keyframes']} automatic keyframes (DDColor-T, CPU), propagate backend: "
          f"{share['seconds_automatic']:.1f} s with them made, {share['seconds_given']:.1f} s with them given: "
          f"keyframes are {100 * share['keyframe_share']:.0f} % of the render")
    if args.json:
        args.json.write_text(json.dumps({"models": rows, "render": share}, indent=2))


if __name__ == "__main__":
    main()
