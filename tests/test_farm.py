"""The render farm (``--ray``): how work is split, and the cluster tests, which run in a
network namespace holding only loopback (Ray binds the machine's outside address even when
told 127.0.0.1), in tests/cluster/. Loopback there holds a second address too, OUTSIDE, for
the clusters that stand in for other machines (an address that is not loopback)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsexcolor.render.scheduling import Planning, Schedule, balance
from vsexcolor.render.pipeline import parts_of

ROOT = Path(__file__).resolve().parents[1]
#: Not a loopback address, on loopback in the cluster tests' namespace (tests/cluster/ reads it).
OUTSIDE = "10.9.9.9"


def test_tasks_are_runs_of_whole_scenes_each_a_share_of_what_is_left_longest_first():
    scenes = [(0, 9), (10, 49), (50, 59), (60, 69), (70, 79), (80, 199), (200, 209), (210, 229), (230, 239)]
    tasks = balance(scenes, 2)
    assert sorted(p for task in tasks for p in task) == scenes  # every scene once, none split
    for task in tasks:  # each task is consecutive frames
        assert all(b + 1 == c for (_, b), (c, _) in zip(task, task[1:]))
    lengths = [sum(b - a + 1 for a, b in task) for task in tasks]
    assert lengths == sorted(lengths, reverse=True)
    # A task takes at most a quarter (1 / (2 x 2 slots)) of the frames left, or one scene:
    # of 240 frames 60, of 180 45, of 40 10..., so the tasks shrink along the film; a scene
    # longer than its share (80..199) is a task of its own.
    assert tasks == [[(80, 199)], [(0, 9), (10, 49), (50, 59)], [(60, 69), (70, 79)], [(210, 229)], [(200, 209)],
                     [(230, 239)]]


def test_a_part_is_known_once_the_pieces_from_its_start_to_past_its_end_are_planned_in_any_order():
    planning = Planning([(0, 99), (200, 259)], 30)
    assert [p[:3] for p in planning.pieces] == [(0, 29, 0), (30, 59, 0), (60, 89, 0), (90, 99, 0), (200, 229, 200),
                                                (230, 259, 200)]
    firsts = {0: [0, 10], 1: [30, 45], 2: [60], 3: [], 4: [200], 5: [250]}
    known = {piece: planning.done(piece, firsts[piece]) for piece in (1, 0, 3, 2, 5, 4)}
    # (30, 44) lies in piece 1; (10, 29) needs pieces 0 and 1; (45, 59) piece 2 as well; the
    # scene from 60 runs to the end of its run (piece 3); each is given once.
    assert known == {1: [(30, 44)], 0: [(0, 9), (10, 29)], 3: [], 2: [(45, 59), (60, 99)], 5: [(250, 259)],
                     4: [(200, 249)]}
    assert planning.finished
    assert sorted(p for piece in known.values() for p in piece) == parts_of([(0, 99), (200, 259)],
                                                                           [0, 10, 30, 45, 60, 200, 250])


def test_workers_get_the_known_parts_at_the_head_of_the_film_then_the_longest_tasks_then_lost_parts_first():
    schedule = Schedule(240, 2)
    schedule.known([(0, 9), (10, 49)])  # the film's first piece is planned
    assert schedule.next() == [(0, 9), (10, 49)]  # what is known, rather than an idle worker
    assert schedule.next() is None  # nothing known to give
    schedule.known([(50, 59), (60, 69), (70, 79), (80, 99)])
    assert schedule.next() == [(50, 59), (60, 69), (70, 79)]  # up to a share: 190 frames left // 4 = 47
    schedule.known([(100, 199), (200, 209), (210, 229), (230, 239)])
    schedule.planned()  # the rest, by balance(): the longest first
    assert schedule.next() == [(100, 199)]
    schedule.again([(10, 49)])  # a lost task's part not received
    assert schedule.next() == [(10, 49)]
    assert [schedule.next() for _ in range(4)] == [[(80, 99)], [(210, 229)], [(200, 209)], [(230, 239)]]
    assert schedule.next() is None and schedule.left == 0


def node(name: str, cpus: int, asks: str, gpus: int = 0, cuda: int | None = None):
    """A node as its check finds it: Ray's CPUs and GPUs there, the CUDA devices torch sees
    (as many as Ray counts unless said), and the device the render resolves to there ("":
    none, a script without colorize)."""
    from vsexcolor.render.scheduling import NodeCheck

    return NodeCheck(name, cpus=cpus, gpus=gpus, cuda=gpus if cuda is None else cuda, asks=(asks,) if asks else ())


def test_each_node_resolves_the_device_and_gpu_work_goes_to_the_gpus_one_task_each():
    from vsexcolor.render.scheduling import Placement, placement

    # --device auto: a head without a GPU, a node with two, a laptop driving CPU nodes.
    assert placement([node("head", 4, "cpu"), node("gpus", 16, "cuda", gpus=2)]) == Placement(gpu=True, slots=2)
    assert placement([node("a", 4, "cpu"), node("b", 8, "cpu")]) == Placement(gpu=False, slots=12)
    # --device cpu on GPU nodes: one task a CPU.
    assert placement([node("gpus", 16, "cpu", gpus=2)]) == Placement(gpu=False, slots=16)
    # A script without colorize resolves no device: one task a CPU.
    assert placement([node("a", 3, "")]) == Placement(gpu=False, slots=3)


@pytest.mark.parametrize("nodes, message", [
    ([node("a", 4, "cuda"), node("b", 4, "cuda")], "the render asks for device cuda and no node of the cluster has a "
     "GPU: render with --device auto or cpu, or add a node with a GPU"),
    ([node("a", 4, "cpu"), node("b", 4, "cuda", cuda=1)], "node b has 1 GPU that Ray does not count, and the render "
     "runs on it there: start Ray on it with --num-gpus 1, or render with --device cpu"),
    ([], "no node of the Ray cluster takes tasks (none has a CPU): join one with `ray start --address HEAD:PORT`"),
    # Ray counts fractions of a CPU; a task takes a whole one, and none would ever start.
    ([node("a", 0.5, "cpu")], "the nodes of the Ray cluster have 0.5 CPUs between them, and a task takes one: "
     "start Ray with --num-cpus 1 or more"),
    # Ray would send GPU tasks to b, whose torch sees no GPU: its parts would be the CPU's.
    ([node("a", 4, "cuda", gpus=1), node("b", 4, "cpu", gpus=1, cuda=0)], "node b has 1 GPU that Ray counts and torch "
     "does not see there, so its parts would come from the CPU and the others' from CUDA: start Ray on it with "
     "--num-gpus 0, or make torch see its GPUs (a CUDA build of torch)"),
])
def test_where_no_node_can_run_what_was_asked_the_render_stops_in_one_line(nodes, message):
    from vsexcolor.render.pipeline import RenderError
    from vsexcolor.render.scheduling import placement

    with pytest.raises(RenderError) as stopped:
        placement(nodes)
    assert str(stopped.value) == message


def test_parts_resumed_with_holes_leave_gaps_to_render():
    from vsexcolor.render.pipeline import gaps

    done = {10: (19, Path("a")), 30: (39, Path("b"))}
    assert gaps(0, 49, done) == [(0, 9), (20, 29), (40, 49)]
    assert gaps(10, 39, done) == [(20, 29)]
    assert gaps(10, 19, done) == []


def _in_loopback_namespace() -> list[str]:
    """The command prefix that runs a command in a new network namespace with only loopback up
    (holding OUTSIDE as well, in $VSEXCOLOR_TEST_OUTSIDE)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run the cluster tests"
    user = [] if os.geteuid() == 0 else ["-r"]  # a user namespace gives an ordinary user the rights
    return [unshare, *user, "-n", "sh", "-c", f'ip link set lo up && ip addr add {OUTSIDE}/32 dev lo && '
            f'VSEXCOLOR_TEST_OUTSIDE={OUTSIDE} exec "$@"', "sh"]


@pytest.mark.slow
def test_the_cluster_tests_pass_in_a_loopback_only_network():
    done = subprocess.run([*_in_loopback_namespace(), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "cluster")], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    # The failing tests' names and reasons first: a long difference must not push them out.
    failed = [line[:400] for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    report = "\n".join(failed) + "\n" + done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert " passed" in done.stdout and " failed" not in done.stdout, report
    print(done.stdout.splitlines()[-1])


def test_planning_in_pieces_finds_the_scenes_a_serial_render_cuts_at(tmp_path, monkeypatch):
    import numpy as np

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor.render import workfolder
    from vsexcolor.commands.colorize import ColorizeRecipe
    from vsexcolor.render.pipeline import Render, build, part_firsts, parts_of, render_here
    from vsexcolor.render.video import probe

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


def test_a_worker_lets_its_planning_clip_go_before_it_renders(tmp_path, monkeypatch):
    import weakref

    import numpy as np

    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor.commands.colorize import ColorizeRecipe
    from vsexcolor.render import node_tasks
    from vsexcolor.render.pipeline import Render, build
    from vsexcolor.render.video import probe

    film = write_video(tmp_path / "film.mp4", np.concatenate(
        [decode_rgb(sample_clip_path(name), 8, (64, 48)) for name in ("bikes", "carphone_pristine")]))
    still = write_image(tmp_path / "still.png", decode_rgb(sample_clip_path("bikes"), 1, (64, 48))[0])
    info = probe(film, progress=False)
    render = Render(ColorizeRecipe(info, ((0, still),), (("backend", "propagate"), ("pixels", 64 * 48))), info,
                    "ffv1", None, 0, info.num_frames - 1)
    clips: dict[bool, list[weakref.ref]] = {True: [], False: []}
    held = []  # planning clips alive as each clip to render was built

    def watched(render: Render, planning: bool = False):
        if not planning:
            held.append(sum(clip() is not None for clip in clips[True]))
        built = build(render, planning)
        clips[planning].append(weakref.ref(built))
        return built

    class Counter:  # stands in for the driver's Ray actor
        class add:
            @staticmethod
            def remote(frames: int) -> None:
                pass

    monkeypatch.setattr(node_tasks, "_node", lambda: "here")
    monkeypatch.setattr(node_tasks, "build", watched)
    assert node_tasks.plan_task(render, "film", 0, 15, 0) == [0, 8]
    assert node_tasks.plan_task(render, "film", 8, 15, 0) == [8]  # its next piece: the same planning clip
    assert len(clips[True]) == 1 and clips[True][0]() is not None
    objects = list(node_tasks.render_task(render, [(0, 7), (8, 15)], Counter, 0.0, None))
    assert [(o.first, o.last) for o in objects if isinstance(o, node_tasks.Part)] == [(0, 7), (8, 15)]
    assert held == [0]  # the planning clip was collected before the clip rendered was built
    # A planning task after it builds its clip again, and plans alike.
    assert node_tasks.plan_task(render, "film", 0, 15, 0) == [0, 8] and len(clips[True]) == 2


# --- reaching a cluster: checked before anything is written ---------------------------------------------------

ELSEWHERE = "10.1.2.3:6379"  # not loopback


@pytest.mark.parametrize("address, answer, insecure, outcome", [
    (ELSEWHERE, {"token": True, "ours": "ok"}, False, "token"),
    ("127.0.0.1:6379", {"token": False}, False, "open"),
    ("localhost:6379", {"token": False}, False, "open"),
    (ELSEWHERE, {"token": False}, True, "open, warned"),
    (ELSEWHERE, {"token": False}, False, f"the Ray cluster at {ELSEWHERE} requires no token, so anyone who reaches "
     "its ports can run any code on its machines: restart it with RAY_AUTH_MODE=token on every machine (README, "
     "\"Rendering on a cluster\"), or add --insecure-cluster to use it as it is"),
    ("127.0.0.1:6379", {"token": True, "ours": "missing"}, False, "the Ray cluster at 127.0.0.1:6379 requires a "
     "token and this machine has none: copy the head's ~/.ray/auth_token to HOME/.ray/auth_token (or set "
     "RAY_AUTH_TOKEN_PATH to a copy)"),
    (ELSEWHERE, {"token": True, "ours": "wrong"}, True, f"the Ray cluster at {ELSEWHERE} refuses the token in "
     "HOME/.ray/auth_token: use the one it was started with (the head's ~/.ray/auth_token)"),
    (ELSEWHERE, {"error": "nothing there answered"}, False, f"cannot join the Ray cluster at {ELSEWHERE}: nothing "
     "there answered"),
])
def test_a_cluster_is_used_only_if_it_requires_our_token_or_is_on_loopback_or_insecure_is_asked_for(
        address, answer, insecure, outcome, tmp_path, monkeypatch):
    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    answers(monkeypatch, answer, asked := [])  # nothing listens there in fact
    monkeypatch.setattr(cluster, "_listening", lambda port: ["127.0.0.1"])  # the head on loopback alone
    warned: list[str] = []
    try:
        access = cluster.check(address, insecure=insecure, warn=warned.append)
    except RenderError as e:
        assert str(e) == outcome.replace("HOME", str(tmp_path))
    else:
        assert access == cluster.Access(address, token=outcome == "token"), outcome
        assert bool(warned) == outcome.endswith("warned"), warned
        assert not warned or warned[0].startswith(f"WARNING: --insecure-cluster: the Ray cluster at {address} "
                                                  "requires no token")
    assert asked == [address]


def test_a_head_on_every_interface_that_requires_no_token_is_refused_though_named_by_loopback(monkeypatch):
    import socket

    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    monkeypatch.setattr(cluster, "_probe", lambda at: {"token": False})  # a head without tokens ...
    with socket.create_server(("0.0.0.0", 0)) as head:  # ... that listens on every interface, as older Rays' do
        address = f"127.0.0.1:{head.getsockname()[1]}"
        with pytest.raises(RenderError, match=rf"^the Ray cluster at {address} requires no token and listens beyond "
                                              r"loopback \(on 0\.0\.0\.0\), so anyone who reaches its ports"):
            cluster.check(address)
    with socket.create_server(("127.0.0.1", 0)) as head:  # on loopback alone: only this machine reaches it
        address = f"127.0.0.1:{head.getsockname()[1]}"
        assert cluster.check(address) == cluster.Access(address, token=False)


OPEN = {"token": False}


@pytest.mark.parametrize("listening, insecure, outcome", [
    (["127.0.0.1", "::1"], False, "open"),
    (["0.0.0.0"], False, "the Ray cluster at 127.0.0.1:6379 requires no token and listens beyond loopback (on "
     "0.0.0.0), so anyone who reaches its ports can run any code on its machines: restart it with RAY_AUTH_MODE=token "
     "on every machine (README, \"Rendering on a cluster\"), or add --insecure-cluster to use it as it is"),
    (["127.0.0.1", "10.1.2.3"], False, "the Ray cluster at 127.0.0.1:6379 requires no token and listens beyond "
     "loopback (on 10.1.2.3), so anyone who reaches its ports can run any code on its machines: restart it with "
     "RAY_AUTH_MODE=token on every machine (README, \"Rendering on a cluster\"), or add --insecure-cluster to use it "
     "as it is"),
    (["::"], True, "WARNING: --insecure-cluster: the Ray cluster at 127.0.0.1:6379 requires no token; anyone who "
     "reaches its ports can run any code on its machines, this one included, and read or change what they render"),
    (None, False, "WARNING: the Ray cluster at 127.0.0.1:6379 requires no token, and where it listens cannot be told "
     "here: if it listens beyond loopback, anyone who reaches its ports can run any code on its machines; restart it "
     "with RAY_AUTH_MODE=token to be sure"),
])
def test_a_cluster_on_loopback_that_requires_no_token_is_refused_where_it_listens_beyond_loopback(
        listening, insecure, outcome, monkeypatch):
    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    answers(monkeypatch, OPEN, [])
    ports = []
    monkeypatch.setattr(cluster, "_listening", lambda port: ports.append(port) or listening)
    warned: list[str] = []
    try:
        access = cluster.check("127.0.0.1:6379", insecure=insecure, warn=warned.append)
    except RenderError as e:
        assert str(e) == outcome
    else:
        assert access == cluster.Access("127.0.0.1:6379", token=False)
        assert warned == ([] if outcome == "open" else [outcome])
    assert ports == [6379]


def test_where_this_machine_listens_on_a_port_is_read_from_the_system():
    import socket

    from vsexcolor.render import cluster

    for family, address, shown in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"), (socket.AF_INET, "0.0.0.0", "0.0.0.0"),
                                   (socket.AF_INET6, "::", "::"), (socket.AF_INET6, "::1", "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as server:
            server.bind((address, 0))
            port = server.getsockname()[1]
            assert cluster._listening(port) is None, address  # bound, not listening yet
            server.listen()
            assert cluster._listening(port) == [shown], address


def test_a_ray_started_here_requires_a_token_and_bad_addresses_are_one_line(monkeypatch):
    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.check("") == cluster.check(None) == cluster.Access(None, token=True)
    for address in ("6379", "head:65536", "head:0", "head:6379\u00b2"):
        with pytest.raises(RenderError) as refused:
            cluster.check(address)
        assert str(refused.value) == f"--ray takes HOST:PORT (that of `ray start --head`; a port of 1 to 65535), " \
                                     f"got {address!r}"


def test_ray_auto_is_the_cluster_started_on_this_machine_as_ray_finds_it(tmp_path, monkeypatch):
    from ray._private import services

    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where `ray start --head` notes its address
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])  # no other Ray runs here
    with pytest.raises(RenderError, match=r"^--ray auto: no Ray cluster was started on this machine; start one with "
                                          r"`ray start --head`, or give its HOST:PORT$"):
        cluster.check("auto")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.1.2.3:6399\n")  # as `ray start --head` leaves it
    answers(monkeypatch, {"token": True, "ours": "ok"}, asked := [])
    assert cluster.check("auto") == cluster.Access("10.1.2.3:6399", token=True)
    assert asked == ["10.1.2.3:6399"]


@pytest.mark.parametrize("address", ["ray://10.1.2.3:10001", "ray://head"])
def test_a_ray_client_address_is_refused_saying_what_to_give_instead(address, monkeypatch):
    from vsexcolor.render import cluster
    from vsexcolor.render.pipeline import RenderError

    answers(monkeypatch, {"token": True, "ours": "ok"}, asked := [])
    with pytest.raises(RenderError) as refused:
        cluster.check(address)
    assert str(refused.value) == (
        f"--ray takes the address of `ray start --head` (HOST:PORT, port 6379 unless --port changed it), not a Ray "
        f"Client address (ray://...): give the head's HOST:PORT, got {address!r}")
    assert asked == []


def test_the_cluster_is_checked_before_the_input_is_indexed_or_the_script_run(tmp_path, monkeypatch, capsys):
    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor import commands
    from vsexcolor.commands import colorize

    monkeypatch.setenv("HOME", str(tmp_path))  # no token here
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    answers(monkeypatch, {"token": True, "ours": "missing"}, asked := [])
    film = write_video(tmp_path / "film.mp4", decode_rgb(sample_clip_path("bikes"), 3, (64, 48)))
    still = write_image(tmp_path / "still.png", decode_rgb(sample_clip_path("bikes"), 1, (64, 48))[0])
    probed = []
    monkeypatch.setattr(colorize, "probe", lambda *args: probed.append(args))  # indexes a film: minutes
    assert commands.main(["colorize", str(film), "--ref", str(still), "-o", str(tmp_path / "out.mkv"),
                          "--ray", ELSEWHERE]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"vsexcolor colorize: the Ray cluster at {ELSEWHERE} requires a token and this machine has none")
    assert probed == []
    script = tmp_path / "film.vpy"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\nimport vapoursynth as vs\n"
                      "vs.core.std.BlankClip(length=3).set_output()\n")
    assert commands.main(["render", str(script), "-o", str(tmp_path / "out.mkv"), "--ray", ELSEWHERE]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"vsexcolor render: the Ray cluster at {ELSEWHERE} requires a token and this machine has none")
    assert not (tmp_path / "ran").exists()  # its sources would have indexed the film
    assert asked == [ELSEWHERE, ELSEWHERE]


def answers(monkeypatch, answer: dict, asked: list) -> None:
    """Every address takes connections, and the cluster there answers ``answer`` (the
    addresses asked are put in ``asked``)."""
    from vsexcolor.render import cluster

    class Connection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(cluster.socket, "create_connection", lambda *args, **kwargs: Connection())
    monkeypatch.setattr(cluster, "_probe", lambda at: asked.append(at) or answer)


def test_a_run_that_renders_nothing_leaves_nothing(tmp_path, monkeypatch, capsys):
    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor import commands
    from vsexcolor.render import farm
    from vsexcolor.render.pipeline import RenderError

    film = write_video(tmp_path / "film.mp4", decode_rgb(sample_clip_path("bikes"), 3, (64, 48)))
    still = write_image(tmp_path / "still.png", decode_rgb(sample_clip_path("bikes"), 1, (64, 48))[0])
    out, parts = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"

    def colorize(*extra: str) -> int:
        return commands.main(["colorize", str(film), "--ref", str(still), "-o", str(out), "--size", "3072",
                              "--backend", "propagate", "--ray", *extra])

    seen = []

    def fail(error: BaseException, part: bool = False):
        def render_on_ray(render, work, *args, **kwargs):
            seen.append(parts.exists())  # the work folder was made, and nothing put in it
            if part:
                work.add(0, 0, b"a part")
            raise error
        return render_on_ray

    for error, code in ((RenderError("the cluster went away"), 2), (KeyboardInterrupt(), 130)):
        monkeypatch.setattr(farm, "render_on_ray", fail(error))
        assert colorize() == code
        assert seen.pop() and not parts.exists() and not out.exists()
    # A run that rendered a part keeps it for --resume; a run that resumes keeps the folder
    # even where the part proves damaged and nothing else is made.
    monkeypatch.setattr(farm, "render_on_ray", fail(RenderError("the cluster went away"), part=True))
    assert colorize() == 2
    assert sorted(p.name for p in parts.iterdir()) == ["frames-00000000-00000000.mp4", "manifest.json"]
    monkeypatch.setattr(farm, "render_on_ray", fail(RenderError("the cluster went away")))
    assert colorize("--resume") == 2
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json"]
    assert commands.main(["colorize", str(film), "--ref", str(still), "-o", str(out), "--insecure-cluster"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "vsexcolor colorize: --insecure-cluster goes with --ray ADDRESS"


def test_a_node_that_renders_with_anything_else_is_named_with_the_item_and_both_values():
    from vsexcolor.render.farm import _disagreement

    ours = {"torch": "2.4.1", "file /films/reel1.mkv": "10 bytes, sha256 aa"}
    assert _disagreement("n1", ours, dict(ours)) is None
    assert _disagreement("n1", ours, {**ours, "torch": "2.3.0"}) == (
        "node n1 has torch 2.3.0, this machine 2.4.1: every machine must run the same versions")
    assert _disagreement("n1", ours, {**ours, "file /films/reel1.mkv": "12 bytes, sha256 bb"}) == (
        "node n1 reads /films/reel1.mkv as 12 bytes, sha256 bb, this machine as 10 bytes, sha256 aa: every machine "
        "must read the same files at the same paths")
    assert _disagreement("n1", ours, {"torch": "2.4.1"}) == (
        "node n1 reads /films/reel1.mkv as nothing, this machine as 10 bytes, sha256 aa: every machine must read the "
        "same files at the same paths")


def test_every_machine_reports_the_versions_and_files_it_renders_with(tmp_path):
    from vsexcolor.render.environment import environment

    small, large = tmp_path / "still.png", tmp_path / "film.mkv"
    small.write_bytes(b"png")
    large.write_bytes(bytes(range(256)) * (65 << 12))  # 65 MiB
    found = environment("h264", [small, large])
    assert {"vsexcolor", "VapourSynth", "torch", "OpenCV", "PyAV", "FFmpeg libavcodec", "encoder"} <= found.keys()
    assert found["encoder"].startswith("x264 - core ")
    assert found[f"file {small}"] == "3 bytes, sha256 " + __import__("hashlib").sha256(b"png").hexdigest()
    assert found[f"file {large}"].startswith(f"{65 << 20} bytes, sha256 of the first and last MiB ")
    assert environment("ffv1", [])["encoder"].startswith("ffv1 of libavcodec ")


def test_workers_started_here_share_the_cores_and_fit_in_memory(monkeypatch):
    import warnings

    from vsexcolor.render import farm

    monkeypatch.setattr(farm.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(farm, "_free_memory", lambda: 100 << 30)
    assert farm.local_workers(None, False, ["propagate"]) == (8, 1)  # one per core, one thread each
    assert farm.local_workers(2, False, ["devc"]) == (2, 4)  # the cores shared out
    monkeypatch.setattr(farm, "_free_memory", lambda: 10 << 30)
    with pytest.warns(UserWarning, match=r"^vsexcolor: 2 workers rather than 8: a worker process takes up to 4 GiB "
                                         r"with devc and this machine has 10\.0 GiB free$"):
        assert farm.local_workers(None, False, ["devc"]) == (2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert farm.local_workers(4, False, ["propagate"]) == (4, 2)  # 4 x 2 GiB fit
    # On CUDA a worker takes a GPU of its own: Ray would hand out ids of GPUs this machine lacks.
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    monkeypatch.setattr(farm, "_free_memory", lambda: 100 << 30)
    assert farm.local_workers(None, True, ["devc"]) == (2, 4)
    with pytest.warns(UserWarning, match=r"^vsexcolor: 2 workers rather than 4: a worker renders on a GPU of its "
                                         r"own, and this machine has 2$"):
        assert farm.local_workers(4, True, ["devc"]) == (2, 4)


def test_a_task_s_failure_is_told_in_one_line_by_what_says_most():
    from vsexcolor.render.farm import _cause
    from vsexcolor.render.pipeline import RenderError

    class RayOwn(Exception):  # a lost worker, memory: the cause first, then Ray's advice
        cause = None

    class Raised(Exception):  # a task raised something else: its message ends in what happened
        def __init__(self, cause):
            super().__init__("traceback ...")
            self.cause = cause

    assert _cause(RayOwn("Task was killed due to the node running low on memory.\nRefer to the documentation ...")) \
        == "Task was killed due to the node running low on memory."
    assert _cause(Raised(ValueError("while reading frame 3:\nmoov atom not found"))) == "moov atom not found"
    assert _cause(Raised(RenderError("ours, as we said it"))) == "ours, as we said it"


# --- what a machine renders with: vsexcolor's own code, not its version number --------------------------------

def test_two_checkouts_of_the_same_version_are_told_apart_by_their_code(tmp_path):
    import vsexcolor
    from vsexcolor.render.environment import code_fingerprint, environment

    package = Path(vsexcolor.__file__).parent
    copy = shutil.copytree(package, tmp_path / "vsexcolor", ignore=shutil.ignore_patterns("__pycache__"))
    assert code_fingerprint(copy) == code_fingerprint(package)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "stale.cpython-312.pyc").write_bytes(b"compiled")  # not code that is read
    (copy / "notes.txt").write_text("not code")
    assert code_fingerprint(copy) == code_fingerprint(package)
    other = shutil.copytree(copy, tmp_path / "other" / "vsexcolor")  # the next commit, as checked out elsewhere
    changed = other / "render" / "farm.py"
    changed.write_text(changed.read_text() + "\n# another commit\n")
    assert code_fingerprint(other) != code_fingerprint(package)
    assert environment("ffv1", [])["vsexcolor"] == f"{vsexcolor.__version__}, code {code_fingerprint(package)}"


def test_a_node_running_other_vsexcolor_code_is_named_in_plain_words():
    from vsexcolor.render.farm import _disagreement

    ours = {"vsexcolor": "0.1.0, code sha256 aaaa", "torch": "2.4.1"}
    assert _disagreement("n1", ours, {**ours, "vsexcolor": "0.1.0, code sha256 bbbb"}) == (
        "node n1 runs other vsexcolor code (0.1.0, code sha256 bbbb) than this machine (0.1.0, code sha256 aaaa): "
        "every machine must run the same vsexcolor, installed from the same release or checkout")


def test_a_resume_with_other_vsexcolor_code_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    from clips import decode_rgb, sample_clip_path
    from media import write_image, write_video
    from vsexcolor import commands
    from vsexcolor.render import environment, farm
    from vsexcolor.render.pipeline import RenderError

    film = write_video(tmp_path / "film.mp4", decode_rgb(sample_clip_path("bikes"), 3, (64, 48)))
    still = write_image(tmp_path / "still.png", decode_rgb(sample_clip_path("bikes"), 1, (64, 48))[0])
    out = tmp_path / "out.mkv"
    command = ["colorize", str(film), "--ref", str(still), "-o", str(out), "--size", "3072", "--backend", "propagate"]

    def one_part_then_fail(render, work, *args, **kwargs):
        work.add(0, 0, b"a part")
        raise RenderError("the cluster went away")

    monkeypatch.setattr(farm, "render_on_ray", one_part_then_fail)
    assert commands.main([*command, "--ray"]) == 2
    ours = environment.code_fingerprint(Path(environment.__file__).parents[1])
    # Another checkout of the same version (0.1.0) takes the render up.
    monkeypatch.setattr(environment, "code_fingerprint", lambda package: "sha256 0123456789abcdef")
    capsys.readouterr()
    assert commands.main([*command, "--resume"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "(vsexcolor was '0.1.0, code " + ours + "', now '0.1.0, code sha256 0123456789abcdef')" in line, line
    assert not out.exists()
