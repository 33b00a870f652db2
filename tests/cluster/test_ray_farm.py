"""Renders on a Ray cluster come out byte for byte as the serial render of the same command,
whatever happens to the machines or the driver meanwhile; problems are one clear line.

A cluster of two nodes on this machine (Ray's own ``cluster_utils``: a head and a second
raylet) stands in for two machines; these tests run in a loopback-only network namespace
(see tests/test_farm.py).
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ray.cluster_utils import Cluster

from clips import decode_rgb, sample_clip_path
from media import write_image, write_video
from vsexcolor import commands, workfolder

pytestmark = pytest.mark.slow

W, H = 64, 48
TINY = ["--size", str(W * H)]


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """Five shots of 12 to 30 frames: enough scenes for several tasks on two nodes."""
    shots = [("bikes", 30), ("carphone_pristine", 20), ("bigbuckbunny", 25)]
    frames = np.concatenate([decode_rgb(sample_clip_path(name), n, (W, H)) for name, n in shots]
                            + [decode_rgb(sample_clip_path("bikes"), 42, (W, H))[30:]]
                            + [decode_rgb(sample_clip_path("carphone_pristine"), 14, (W, H))])
    folder = tmp_path_factory.mktemp("film")
    write_image(folder / "still.png", frames[0])
    return write_video(folder / "film.mp4", frames)


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def devc_range(weights: Path) -> list[object]:
    """The networks on the CPU are slow: a range of the film, from the middle of a scene."""
    return ["--backend", "devc", "--weights", weights, "--codec", "ffv1", "--start", 40, "--end", 64]


def cli(*args: object) -> int:
    return commands.main([str(a) for a in args])


def colorize_args(film: Path, out: Path, *extra: object) -> list[object]:
    return ["colorize", film, "--ref", film.with_name("still.png"), "-o", out, *TINY, *extra]


@pytest.fixture(scope="module")
def serial(film, tmp_path_factory, devc_weights) -> dict[str, bytes]:
    """The serial renders the farm must equal: propagate in FFV1 and H.264, devc in FFV1."""
    folder = tmp_path_factory.mktemp("serial")
    outputs = {}
    for name, extra in (("ffv1", ["--backend", "propagate", "--codec", "ffv1"]),
                        ("h264", ["--backend", "propagate"]),
                        ("devc", devc_range(devc_weights))):
        assert cli(*colorize_args(film, folder / f"{name}.mkv", *extra)) == 0
        outputs[name] = (folder / f"{name}.mkv").read_bytes()
    return outputs


def test_a_render_on_two_nodes_is_the_serial_render_byte_for_byte(film, two_nodes, serial, devc_weights, tmp_path,
                                                                    capsys):
    for name, extra in (("ffv1", ["--backend", "propagate", "--codec", "ffv1"]),
                        ("h264", ["--backend", "propagate"]),
                        ("devc", devc_range(devc_weights))):
        out = tmp_path / f"{name}.mkv"
        assert cli(*colorize_args(film, out, *extra, "--ray", two_nodes.address)) == 0
        assert out.read_bytes() == serial[name], name
        summary = capsys.readouterr().err.splitlines()[-1]
        # Both nodes took tasks, and the summary says how much each made.
        assert len(re.findall(r"node \w+: \d+ frames", summary)) == 2, summary


def test_a_node_lost_mid_render_changes_nothing(film, serial, tmp_path, monkeypatch):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    add = workfolder.WorkFolder.add
    lost = []

    def lose_a_node_after_the_first_part(self, first, last, data, restart=False):
        add(self, first, last, data, restart)
        if not lost:
            lost.append(first)
            cluster.remove_node(doomed, allow_graceful=False)

    monkeypatch.setattr(workfolder.WorkFolder, "add", lose_a_node_after_the_first_part)
    try:
        out = tmp_path / "out.mkv"
        assert cli(*colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray",
                                  cluster.address)) == 0
    finally:
        cluster.shutdown()
    # The node went with the first scene written and four more to come (two in flight).
    assert lost
    assert out.read_bytes() == serial["ffv1"]


def test_a_driver_killed_mid_render_resumes_to_the_same_bytes(film, two_nodes, serial, tmp_path):
    out = tmp_path / "out.mkv"
    command = [str(a) for a in colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray",
                                             two_nodes.address)]
    parts = tmp_path / "out.mkv.parts"
    driver = subprocess.Popen([sys.executable, "-m", "vsexcolor", *command], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any(parts.glob("frames-*.mp4")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(parts.glob("frames-*.mp4")) and driver.poll() is None, "no part was written in time"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    assert not out.exists()
    # Resumed here, without Ray: local and cluster runs resume each other's work.
    assert cli(*command[:-2], "--resume") == 0
    assert out.read_bytes() == serial["ffv1"]


def test_a_script_renders_on_the_farm_as_it_does_here(film, two_nodes, tmp_path):
    script = tmp_path / "restore.vpy"
    script.write_text(f"""
import vapoursynth as vs
import vsexcolor
from vsexcolor.video import open_clip, probe
clip = open_clip(probe({str(film)!r}, progress=False))
vsexcolor.colorize(clip, {str(film.with_name("still.png"))!r}, backend="propagate", pixels={W * H}).set_output()
""")
    here, farm = tmp_path / "here.mkv", tmp_path / "farm.mkv"
    assert cli("render", script, "-o", here, "--audio", film) == 0
    assert cli("render", script, "-o", farm, "--audio", film, "--ray", two_nodes.address) == 0
    assert farm.read_bytes() == here.read_bytes()


def test_an_unreachable_cluster_is_one_line_within_30_seconds(film, tmp_path, capsys):
    began = time.monotonic()
    assert cli(*colorize_args(film, tmp_path / "out.mkv", "--backend", "propagate", "--ray", "127.0.0.1:9")) == 2
    assert time.monotonic() - began < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vsexcolor colorize: cannot reach a Ray cluster at 127.0.0.1:9 ("), err
    assert err[-1].endswith("start one with `ray start --head`, or check the address")


def test_a_path_a_worker_cannot_read_is_named_with_its_node(film, two_nodes, tmp_path, monkeypatch, capsys):
    # The reference is gone by the time the tasks run, as on a node without the shared storage.
    reference = tmp_path / "still.png"
    reference.write_bytes(film.with_name("still.png").read_bytes())
    from vsexcolor import farm

    plan = farm.plan_on_ray

    def plan_then_lose_the_reference(*args, **kwargs):
        parts = plan(*args, **kwargs)
        reference.unlink()
        return parts

    monkeypatch.setattr(farm, "plan_on_ray", plan_then_lose_the_reference)
    code = cli("colorize", film, "--ref", reference, "-o", tmp_path / "out.mkv", *TINY, "--backend", "propagate",
               "--ray", two_nodes.address)
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("vsexcolor colorize: node ") and f"cannot read {reference}: every machine must read" in line


def test_automatic_keyframes_are_made_by_the_nodes_and_give_the_serial_bytes(film, two_nodes, tmp_path, capsys):
    import ddcnets

    model = ddcnets.save_checkpoint(tmp_path / "ddcolor_paper_tiny.pth", "tiny", seed=4, wrapped=True)
    common = ["colorize", film, *TINY, "--backend", "propagate", "--codec", "ffv1", "--keyframe-model", model]
    assert cli(*common, "-o", tmp_path / "serial.mkv") == 0
    made: list[int] = []
    from vsexcolor import keyframes
    colour = keyframes.KeyframeColorizer.rgb
    keyframes.KeyframeColorizer.rgb = lambda self, L: made.append(1) or colour(self, L)  # counts the driver's
    try:
        assert cli(*common, "-o", tmp_path / "farm.mkv", "--ray", two_nodes.address) == 0
    finally:
        keyframes.KeyframeColorizer.rgb = colour
    assert (tmp_path / "farm.mkv").read_bytes() == (tmp_path / "serial.mkv").read_bytes()
    assert made == []  # the keyframes were made where their shots were rendered
    assert re.search(r"in 5 shots", capsys.readouterr().err.splitlines()[-1])
