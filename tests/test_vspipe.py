"""Real renders through vspipe (and ffmpeg): the bytes do not depend on how vspipe asks."""
from __future__ import annotations

import json
import math
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import vapoursynth as vs

from clips import decode_rgb, sample_clip_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VSPIPE = Path(sys.executable).with_name("vspipe")
W, H, FRAMES = 64, 48, 10
FRAME_BYTES = W * H * 3 // 2  # YUV420P8

SCRIPT = """
import sys
import vapoursynth as vs
import vsexcolor
sys.path.insert(0, {tests!r})
from clips import decode_rgb, sample_clip_path, yuv_clip
frames = decode_rgb(sample_clip_path("bikes"), {frames}, ({w}, {h}))
clip = yuv_clip(frames)
vsexcolor.colorize(clip, frames[0], backend="devc", weights={weights!r}, pixels={w} * {h},
                   batch=3, checkpoint_every=4, cache_frames=2).set_output()
"""


def vspipe(*args: str, cwd: Path = ROOT) -> bytes:
    done = subprocess.run([str(VSPIPE), *args], cwd=cwd, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.fixture(scope="module")
def script(tmp_path_factory, devc_weights) -> Path:
    path = tmp_path_factory.mktemp("vpy") / "colorize.vpy"
    path.write_text(SCRIPT.format(tests=str(ROOT / "tests"), frames=FRAMES, w=W, h=H, weights=str(devc_weights)))
    return path


def test_vspipe_renders_identical_bytes_whatever_the_request_count_or_start(script):
    full = vspipe(str(script), "-")
    assert len(full) == FRAMES * FRAME_BYTES
    assert vspipe("-r", "1", str(script), "-") == full
    assert vspipe("-r", "4", str(script), "-") == full
    part = vspipe("-s", "5", "-e", "8", "-r", "4", str(script), "-")
    assert part == full[5 * FRAME_BYTES:9 * FRAME_BYTES]
    late = vspipe("-s", "9", "-e", "9", str(script), "-")
    assert late == full[9 * FRAME_BYTES:]


AUTOMATIC = """
import sys
import vapoursynth as vs
import vsexcolor
sys.path.insert(0, {tests!r})
from clips import decode_rgb, sample_clip_path, yuv_clip
frames = decode_rgb(sample_clip_path("bikes"), 5, ({w}, {h}))
frames = list(frames) + list(decode_rgb(sample_clip_path("bigbuckbunny"), 7, ({w}, {h})))
gray = vs.core.std.ShufflePlanes(yuv_clip(frames), 0, vs.GRAY)
vsexcolor.colorize(gray, None, backend="devc", weights={weights!r}, keyframe_model={model!r}, pixels={w} * {h},
                   batch=3, checkpoint_every=4, cache_frames=2).set_output()
"""


def test_automatic_keyframes_render_identical_bytes_whatever_the_request_count_or_start(tmp_path, devc_weights):
    import ddcnets

    model = ddcnets.save_checkpoint(tmp_path / "ddcolor_paper_tiny.pth", "tiny", seed=5, wrapped=True)
    script = tmp_path / "automatic.vpy"
    script.write_text(AUTOMATIC.format(tests=str(ROOT / "tests"), w=W, h=H, weights=str(devc_weights),
                                       model=str(model)))
    full = vspipe(str(script), "-")
    assert len(full) == 12 * FRAME_BYTES
    assert vspipe("-r", "1", str(script), "-") == full
    assert vspipe("-r", "4", "-s", "6", "-e", "11", str(script), "-") == full[6 * FRAME_BYTES:]


def test_nothing_but_video_reaches_stdout(script):
    y4m = vspipe("-c", "y4m", str(script), "-")
    assert y4m.startswith(b"YUV4MPEG2 ")
    assert y4m.count(b"FRAME\n") == FRAMES


@pytest.fixture(scope="module")
def source_file(tmp_path_factory) -> Path:
    """A short real clip as a file, as a restorer's source would be."""
    path = tmp_path_factory.mktemp("source") / "film.mkv"
    frames = decode_rgb(sample_clip_path("bikes"), 8, (W, H))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")))
        out.mux(stream.encode())
    return path


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    out = []
    for plane in frame.planes:
        data = np.frombuffer(bytes(plane), np.uint16).reshape(plane.height, plane.line_size // 2)
        out.append(data[:, :plane.width])
    return out


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg is installed by scripts/setup.sh")
def test_restore_example_through_vspipe_and_ffmpeg_matches_the_in_process_frames(source_file, devc_weights,
                                                                                   tmp_path):
    script = ROOT / "examples" / "restore.vpy"
    args = {"source": str(source_file), "backend": "devc", "weights": str(devc_weights), "pixels": str(W * H)}
    encoded = tmp_path / "restored.mkv"
    pipe_args = [a for k, v in args.items() for a in ("-a", f"{k}={v}")]
    render = subprocess.Popen([str(VSPIPE), "-c", "y4m", *pipe_args, str(script), "-"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ffmpeg = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-c:v", "ffv1", str(encoded)],
                            stdin=render.stdout, capture_output=True, timeout=600)
    render.stdout.close()
    assert render.wait(timeout=600) == 0, render.stderr.read().decode(errors="replace")
    assert ffmpeg.returncode == 0, ffmpeg.stderr.decode(errors="replace")

    vs.clear_outputs()
    runpy.run_path(str(script), init_globals=dict(args))
    clip = vs.get_output(0)[0] if isinstance(vs.get_output(0), tuple) else vs.get_output(0)
    assert clip.format.id == vs.YUV420P16
    with av.open(str(encoded)) as container:
        decoded = [_planes(f) for f in container.decode(video=0)]
    assert len(decoded) == clip.num_frames == 8
    for n, planes in enumerate(decoded):
        frame = clip.get_frame(n)
        for p in range(3):
            assert np.array_equal(planes[p], np.asarray(frame[p])), (n, p)


def test_the_speed_benchmark_renders_every_case_and_reports_it(tmp_path):
    report = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--sizes", "128x72", "--scales", "1",
                           "--repeat", "2",
                           "--frames", "5", "--length-factor", "2", "--json", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [r[0] for r in rows if r and r[0] in ("authors", "devc", "propagate")] == ["authors", "devc", "propagate"]
    cases = json.loads(report.read_text())["cases"]
    assert all(math.isfinite(c["fps"]) and c["fps"] > 0 and c["runs"][0]["rss_mib"] > 0 for c in cases)
    devc = next(r for r in rows if r and r[0] == "devc")
    assert devc[-2].endswith("x")  # its speed-up over the authors' loop
    assert "memory over clip length" in done.stdout
