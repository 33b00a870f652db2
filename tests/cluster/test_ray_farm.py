"""Renders on a Ray cluster come out byte for byte as the serial render of the same command,
whatever happens to the machines or the driver meanwhile; problems are one clear line.

A cluster of two nodes on this machine (Ray's own ``cluster_utils``: a head and a second
raylet) stands in for two machines; these tests run in a loopback-only network namespace
(see tests/test_farm.py).
"""
from __future__ import annotations

import contextlib
import os
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
from media import assert_same_bytes, write_image, write_video
from vsexcolor import commands
from vsexcolor.render import workfolder

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


def stored(monkeypatch) -> dict[str, list[int]]:
    """The first frames of the parts the driver stored: ``sent``, whose bytes came through it,
    and ``recorded``, which the workers wrote into the shared work folder themselves."""
    seen: dict[str, list[int]] = {"sent": [], "recorded": []}
    add, record = workfolder.WorkFolder.add, workfolder.WorkFolder.record

    def sent(self, first, *args, **kwargs):
        seen["sent"].append(first)
        return add(self, first, *args, **kwargs)

    def recorded(self, first, *args, **kwargs):
        seen["recorded"].append(first)
        return record(self, first, *args, **kwargs)

    monkeypatch.setattr(workfolder.WorkFolder, "add", sent)
    monkeypatch.setattr(workfolder.WorkFolder, "record", recorded)
    return seen


def through_the_driver(monkeypatch) -> None:
    """Workers see no shared work folder (as where the output is on the driver's own disk)."""
    from vsexcolor.render import farm

    monkeypatch.setattr(farm, "_shared_folder", lambda work: None)


def report_of(monkeypatch) -> list:
    """The farm's report of each --ray render, once it has ended."""
    from vsexcolor.render import farm

    reports, render_on_ray = [], farm.render_on_ray

    def reporting(*args, **kwargs):
        reports.append(render_on_ray(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(farm, "render_on_ray", reporting)
    return reports


@pytest.mark.parametrize("shared", [True, False], ids=["workers write the parts", "parts through the driver"])
def test_a_render_on_two_nodes_is_the_serial_render_byte_for_byte(film, two_nodes, serial, devc_weights, tmp_path,
                                                                    capsys, monkeypatch, shared):
    seen = stored(monkeypatch)
    if not shared:
        through_the_driver(monkeypatch)
    for name, extra in (("ffv1", ["--backend", "propagate", "--codec", "ffv1"]),
                        ("h264", ["--backend", "propagate"]),
                        ("devc", devc_range(devc_weights))):
        out = tmp_path / f"{name}.mkv"
        assert cli(*colorize_args(film, out, *extra, "--ray", two_nodes.address)) == 0
        assert_same_bytes(out, serial[name], name)
        summary = capsys.readouterr().err.splitlines()[-1]
        # Both nodes took tasks, and the summary says how much each made.
        assert len(re.findall(r"node \w+: \d+ frames", summary)) == 2, summary
    # Every part was stored one way: written by the workers where they see the work folder.
    assert seen["recorded" if shared else "sent"] and not seen["sent" if shared else "recorded"], seen


def lose(cluster: Cluster, node) -> None:
    """Lose ``node`` as a machine is lost: its worker processes and its raylet killed at once."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    todo = [info.process.pid for info in node.all_processes["raylet"]]
    while todo:
        for pid in children.get(todo.pop(), []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            todo.append(pid)
    cluster.remove_node(node, allow_graceful=False)


def test_a_node_lost_mid_task_costs_only_the_part_it_was_encoding(film, serial, tmp_path, monkeypatch, capsys):
    from vsexcolor.render import farm, scheduling

    # One node to work on at first (the head takes no task), replaced when it is lost.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    # One task of the five scenes; the parts come through the driver, so that what the lost
    # node had sent and the driver had not taken yet would be lost with it.
    monkeypatch.setattr(scheduling, "PLAN_PIECE", 1000)  # planned in one piece, so that balance() cuts the tasks
    monkeypatch.setattr(scheduling, "balance", lambda parts, tasks: [parts])
    through_the_driver(monkeypatch)
    monkeypatch.setattr(farm, "AHEAD", 1)  # a task waits for the driver after each object it gives
    reports = report_of(monkeypatch)
    take, lost = farm._Driver._take, []

    def lose_the_node_once_its_task_has_sent_a_part(self, task, item):
        frames = take(self, task, item)
        if isinstance(item, farm.Part) and not lost:
            assert doomed.node_id[:8] in task.node
            lost.append((item.first, item.last))
            lose(cluster, doomed)
            cluster.add_node(num_cpus=1)
        return frames

    monkeypatch.setattr(farm._Driver, "_take", lose_the_node_once_its_task_has_sent_a_part)
    try:
        out = tmp_path / "out.mkv"
        assert cli(*colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray",
                                  cluster.address)) == 0
    finally:
        cluster.shutdown()
    [report] = reports
    [gone] = report.retried()
    # The task was running on the lost node: it had sent a part (or two) and had more to go ...
    assert doomed.node_id[:8] in gone.node and gone.received[0] == lost[0] and len(gone.rest()) >= 3, gone
    # ... which went to a task of their own on the new node, once; the parts received were kept.
    [again] = [t for t in report.tasks if t.attempt == 2]
    assert again.group == gone.rest() and again.node != gone.node and not again.lost, again
    received = [p for t in report.tasks for p in t.received]
    assert len(received) == len(set(received)) == 5  # no part stored twice
    assert_same_bytes(out, serial["ffv1"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "; 1 task was lost midway and the parts not received handed out again")


def test_a_driver_killed_mid_render_resumes_from_its_finished_parts(film, two_nodes, serial, tmp_path, monkeypatch):
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
    kept: dict[int, tuple[int, int]] = {}  # first frame: (inode, mtime) of the parts the resume found
    resume = workfolder.WorkFolder._resume

    def finding(self, note):
        found = resume(self, note)
        kept.update({first: (path.stat().st_ino, path.stat().st_mtime_ns) for first, (_, path) in found.items()})
        return found

    monkeypatch.setattr(workfolder.WorkFolder, "_resume", finding)
    seen = stored(monkeypatch)
    add = workfolder.WorkFolder.add
    untouched = []

    def checking(self, first, *args, **kwargs):  # the parts found are still as they were
        untouched.extend((p.stat().st_ino, p.stat().st_mtime_ns) == kept[a] for a, (_, p) in self.parts().items()
                         if a in kept)
        return add(self, first, *args, **kwargs)

    monkeypatch.setattr(workfolder.WorkFolder, "add", checking)
    assert cli(*command[:-2], "--resume") == 0
    assert kept, "the killed run left no finished part"
    assert seen["sent"] and not set(seen["sent"]) & set(kept)  # the parts it left were used, not made again
    assert all(untouched)
    assert_same_bytes(out, serial["ffv1"])


def test_a_script_renders_on_the_farm_as_it_does_here(film, two_nodes, tmp_path):
    script = tmp_path / "restore.vpy"
    # Planned from its scene clip, the frames before the (stand-in) denoiser.
    script.write_text(f"""
import vapoursynth as vs
import vsexcolor
from vsexcolor import open_clip, probe
clip = open_clip(probe({str(film)!r}, progress=False))
denoised = vs.core.std.BoxBlur(clip, hradius=1, vradius=1)
vsexcolor.colorize(denoised, {str(film.with_name("still.png"))!r}, backend="propagate", pixels={W * H},
                   scene_clip=clip).set_output()
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
    # Checked before anything is written: nothing to resume.
    assert err[-1].endswith("start one with `ray start --head`, or check the address"), err
    assert not (tmp_path / "out.mkv.parts").exists()


def nothing_planned_or_rendered(monkeypatch) -> list:
    """What the driver was told of the film's parts and received of them (to stay empty)."""
    from vsexcolor.render import farm

    seen, done, take = [], farm.Planning.done, farm._Driver._take
    monkeypatch.setattr(farm.Planning, "done", lambda self, *args: seen.append(args) or done(self, *args))
    monkeypatch.setattr(farm._Driver, "_take", lambda self, task, item: seen.append(item) or take(self, task, item))
    return seen


def test_a_path_a_node_cannot_read_stops_the_render_before_anything_is_planned(film, two_nodes, tmp_path,
                                                                              monkeypatch, capsys):
    # The reference is gone once this machine has read it, as for a node without the shared storage.
    reference = tmp_path / "still.png"
    reference.write_bytes(film.with_name("still.png").read_bytes())
    from vsexcolor.render import farm

    checks = farm._checks

    def lose_the_reference_then_check(*args):
        reference.unlink()
        return checks(*args)

    monkeypatch.setattr(farm, "_checks", lose_the_reference_then_check)
    seen = nothing_planned_or_rendered(monkeypatch)
    code = cli("colorize", film, "--ref", reference, "-o", tmp_path / "out.mkv", *TINY, "--backend", "propagate",
               "--ray", two_nodes.address)
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("vsexcolor colorize: node ") and f"cannot read {reference}: every machine must read" in line
    assert not seen


def test_a_node_with_other_versions_stops_the_render_naming_node_item_and_both(film, two_nodes, tmp_path,
                                                                                monkeypatch, capsys):
    from vsexcolor.render import farm

    environment = farm.environment  # this machine's, as if its OpenCV were another
    monkeypatch.setattr(farm, "environment", lambda *args: {**environment(*args), "OpenCV": "0.0"})
    seen = nothing_planned_or_rendered(monkeypatch)
    code = cli(*colorize_args(film, tmp_path / "out.mkv", "--backend", "propagate", "--ray", two_nodes.address))
    assert code == 2
    import cv2

    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"vsexcolor colorize: node .+ node \w+ has OpenCV {re.escape(cv2.__version__)}, this machine "
                        r"0\.0: every machine must run the same versions", line), line  # no parts to resume
    assert not [item for item in seen if isinstance(item, farm.Part)]


def test_a_worker_that_keeps_crashing_ends_the_render_in_one_line_keeping_the_parts(film, two_nodes, tmp_path,
                                                                                    capsys):
    # A script whose frame 20 kills the worker process that renders it (not this one).
    chain = tmp_path / "crash.vpy"
    chain.write_text(f"""
import os
import ray
import vapoursynth as vs
from vsexcolor import open_clip, probe
clip = open_clip(probe({str(film)!r}, progress=False))


def crash(n, f):
    if n == 20 and ray.is_initialized():
        os._exit(1)
    return f

clip.std.ModifyFrame(clip, crash).set_output()
""")
    out = tmp_path / "out.mkv"
    code = cli("render", chain, "--chunk", "8", "--codec", "ffv1", "-o", out, "--ray", two_nodes.address)
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"vsexcolor render: a task was lost 4 times, the last time: .+; the finished parts are kept "
                        rf"in {re.escape(str(out))}\.parts: run the same command with --resume to continue", line), line
    kept = sorted(p.name for p in (tmp_path / "out.mkv.parts").glob("frames-*.mp4"))
    assert "frames-00000000-00000007.mp4" in kept and "frames-00000016-00000023.mp4" not in kept, kept


def test_ctrl_c_on_the_farm_keeps_the_finished_parts_and_resume_gives_the_same_bytes(film, two_nodes, serial,
                                                                                      tmp_path, monkeypatch, capsys):
    from vsexcolor.render import farm

    take = farm._Driver._take

    def interrupt_after_the_first_part(self, task, item):
        frames = take(self, task, item)
        if isinstance(item, farm.Part):
            raise KeyboardInterrupt
        return frames

    monkeypatch.setattr(farm._Driver, "_take", interrupt_after_the_first_part)
    out = tmp_path / "out.mkv"
    command = colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray", two_nodes.address)
    assert cli(*command) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == (f"vsexcolor colorize: stopped; the finished parts are kept in {out}.parts: run the same "
                       "command with --resume to continue"), err
    assert len(list((tmp_path / "out.mkv.parts").glob("frames-*.mp4"))) >= 1
    monkeypatch.undo()
    assert cli(*command, "--resume") == 0
    assert_same_bytes(out, serial["ffv1"])


def test_automatic_keyframes_are_made_by_the_nodes_and_give_the_serial_bytes(film, two_nodes, tmp_path, capsys):
    import ddcnets

    model = ddcnets.save_checkpoint(tmp_path / "ddcolor_paper_tiny.pth", "tiny", seed=4, wrapped=True)
    common = ["colorize", film, *TINY, "--backend", "propagate", "--codec", "ffv1", "--keyframe-model", model]
    assert cli(*common, "-o", tmp_path / "serial.mkv") == 0
    made: list[int] = []
    from vsexcolor.filter import keyframes
    colour = keyframes.KeyframeColorizer.rgb
    keyframes.KeyframeColorizer.rgb = lambda self, L: made.append(1) or colour(self, L)  # counts the driver's
    try:
        assert cli(*common, "-o", tmp_path / "farm.mkv", "--ray", two_nodes.address) == 0
    finally:
        keyframes.KeyframeColorizer.rgb = colour
    assert (tmp_path / "farm.mkv").read_bytes() == (tmp_path / "serial.mkv").read_bytes()
    assert made == []  # the keyframes were made where their shots were rendered
    assert re.search(r"in 5 shots", capsys.readouterr().err.splitlines()[-1])



# --- the device: resolved by each node ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed():
    """A head without a GPU, a node that Ray gives a GPU (none is here: a test pretends torch
    sees it, :func:`pretending`) and two CPUs, and a node with a CPU; the cluster and the
    GPU node."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    gpu = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, gpu
    cluster.shutdown()


def pretending():
    """Each node's devices as :func:`~vsexcolor.render.node_tasks.devices_here` finds them,
    where torch sees as many CUDA devices as Ray gave the node (a function made here, so that
    Ray sends it whole: the nodes cannot import the tests)."""
    def devices(render):
        from unittest import mock

        import ray
        import torch

        from vsexcolor.render.node_tasks import devices_here

        here = ray.get_runtime_context().get_node_id()
        gpus = int(next(n["Resources"].get("GPU", 0) for n in ray.nodes() if n["NodeID"] == here))
        with mock.patch.object(torch.cuda, "is_available", lambda: gpus > 0), \
                mock.patch.object(torch.cuda, "device_count", lambda: gpus):
            return devices_here(render)

    return devices


def test_with_device_auto_the_nodes_with_a_gpu_take_every_task_one_a_gpu_whatever_the_driver_has(
        film, mixed, serial, tmp_path, monkeypatch, capsys):
    from vsexcolor.render import farm
    from vsexcolor.render.scheduling import Placement

    cluster, gpu = mixed
    monkeypatch.setattr(farm, "devices_here", pretending())
    reports = report_of(monkeypatch)
    out = tmp_path / "out.mkv"
    assert cli(*colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray", cluster.address)) == 0
    # (The node renders on its CPU in fact, as this machine has no GPU: the bytes of a serial render.)
    assert_same_bytes(out, serial["ffv1"])
    [report] = reports
    assert report.where == Placement(gpu=True, slots=1)  # one task at a time: the node has one GPU
    assert [node for node in report.nodes if gpu.node_id[:8] in node] == list(report.nodes)
    assert re.search(rf"node {gpu.node_id[:8]}: 101 frames$", capsys.readouterr().err.splitlines()[-1])


def test_a_driver_with_a_gpu_renders_on_the_cpus_of_nodes_without_one(film, two_nodes, serial, tmp_path,
                                                                       monkeypatch):
    import torch

    from vsexcolor.render.scheduling import Placement

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # this machine, as a laptop with a GPU
    reports = report_of(monkeypatch)
    out = tmp_path / "out.mkv"
    assert cli(*colorize_args(film, out, "--backend", "propagate", "--codec", "ffv1", "--ray", two_nodes.address)) == 0
    assert_same_bytes(out, serial["ffv1"])
    assert reports[0].where == Placement(gpu=False, slots=2)  # every CPU of the nodes


def test_device_cuda_where_no_node_has_a_gpu_stops_in_one_line(film, mixed, tmp_path, capsys):
    cluster, _ = mixed  # Ray counts a GPU on a node, but torch sees none there
    out = tmp_path / "out.mkv"
    began = time.monotonic()
    assert cli(*colorize_args(film, out, "--backend", "propagate", "--device", "cuda", "--ray", cluster.address)) == 2
    assert time.monotonic() - began < 60
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("vsexcolor colorize: the render asks for device cuda and no node of the cluster has a GPU: "
                    "render with --device auto or cpu, or add a node with a GPU"), line
    assert not (tmp_path / "out.mkv.parts").exists()
