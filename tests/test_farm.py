"""The render farm (``--ray``): how work is split, and the cluster tests, which run in a
network namespace holding only loopback (Ray binds the machine's outside address even when
told 127.0.0.1), in tests/cluster/."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsexcolor.farm import balance

ROOT = Path(__file__).resolve().parents[1]


def test_tasks_are_runs_of_whole_scenes_of_about_equal_length_longest_first():
    scenes = [(0, 9), (10, 49), (50, 59), (60, 69), (70, 79), (80, 199), (200, 209)]
    tasks = balance(scenes, 4)
    assert sorted(p for task in tasks for p in task) == scenes  # every scene once, none split
    for task in tasks:  # each task is consecutive frames
        assert all(b + 1 == c for (_, b), (c, _) in zip(task, task[1:]))
    lengths = [sum(b - a + 1 for a, b in task) for task in tasks]
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[0] == 120  # a scene longer than a task's share is a task of its own
    assert len(tasks) >= 4


def test_parts_resumed_with_holes_leave_gaps_to_render():
    from vsexcolor.pipeline import gaps

    done = {10: (19, Path("a")), 30: (39, Path("b"))}
    assert gaps(0, 49, done) == [(0, 9), (20, 29), (40, 49)]
    assert gaps(10, 39, done) == [(20, 29)]
    assert gaps(10, 19, done) == []


def _in_loopback_namespace() -> list[str]:
    """The command prefix that runs a command in a new network namespace with only loopback up."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run the cluster tests"
    user = [] if os.geteuid() == 0 else ["-r"]  # a user namespace gives an ordinary user the rights
    return [unshare, *user, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


@pytest.mark.slow
def test_the_cluster_tests_pass_in_a_loopback_only_network():
    done = subprocess.run([*_in_loopback_namespace(), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "cluster")], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    report = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert " passed" in done.stdout and " failed" not in done.stdout, report
    print(done.stdout.splitlines()[-1])


def test_planning_in_pieces_finds_the_scenes_a_serial_render_cuts_at(tmp_path, monkeypatch):
    import numpy as np

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor import workfolder
    from vsexcolor.commands.colorize import ColorizeRecipe
    from vsexcolor.pipeline import Render, build, part_firsts, parts_of, render_here
    from vsexcolor.video import probe

    shots = [("bikes", 7), ("carphone_pristine", 9), ("bigbuckbunny", 5), ("bikes", 4)]
    film = write_video(tmp_path / "film.mp4", np.concatenate(
        [decode_rgb(sample_clip_path(name), n, (64, 48)) for name, n in shots]))
    still = write_image(tmp_path / "still.png", decode_rgb(sample_clip_path("bikes"), 1, (64, 48))[0])
    info = probe(film, progress=False)
    render = Render(ColorizeRecipe(info, ((0, still),), (("backend", "propagate"), ("pixels", 64 * 48))), info,
                    "ffv1", None, 0, info.num_frames - 1)
    work = workfolder.WorkFolder(tmp_path / "out.mkv")
    work.open({}, resume=False, overwrite=False, note=print)
    render_here(render, build(render), work, [(0, 24)], progress=False, name="test")
    serial = sorted((first, last) for first, (last, _) in work.parts().items())
    assert serial == [(0, 6), (7, 15), (16, 20), (21, 24)]
    planned = build(render, planning=True)
    for size in (1, 3, 7, 25):  # pieces that start on a cut, inside a scene, or cover it all
        firsts = [n for a in range(0, 25, size) for n in part_firsts(render, planned, a, min(a + size, 25) - 1, 0)]
        assert parts_of([(0, 24)], firsts) == serial, size
    # A resumed run's gap starts a part of its own, where the serial run began one too.
    assert parts_of([(7, 24)], part_firsts(render, planned, 7, 24, 7)) == serial[1:]
