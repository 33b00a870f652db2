"""Clusters no stranger can use: ``--ray ADDRESS`` renders on a cluster that requires a token
(sending ours), refuses one that requires none on an address that is not loopback (unless
``--insecure-cluster``), and a missing or wrong token is one line within 30 s that leaves
nothing behind; the README's recipe works where a token file already exists.

The clusters are started as a user would, with ``ray start`` (in the foreground, in a session
of their own, stopped by signalling that session), each machine's ~/.ray in a HOME of its
own. They run in tests/test_farm.py's loopback-only namespace, where loopback holds an
address that is not loopback, OUTSIDE, for the clusters that stand in for other machines.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clips import decode_rgb, sample_clip_path
from media import assert_same_bytes, write_image, write_video
from vsexcolor import commands

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = os.environ.get("VSEXCOLOR_TEST_OUTSIDE", "")
RAY = Path(sys.executable).with_name("ray")
W, H = 64, 48
#: What every `ray start` here adds to the commands a user would type: in the foreground (so
#: the test can stop it), quiet.
QUIET = ["--block", "--disable-usage-stats"]
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """Four shots of 8 frames, and a still for the reference."""
    frames = np.concatenate([decode_rgb(sample_clip_path(name), 8, (W, H))
                             for name in ("bikes", "carphone_pristine", "bigbuckbunny")]
                            + [decode_rgb(sample_clip_path("bikes"), 16, (W, H))[8:]])
    folder = tmp_path_factory.mktemp("film")
    write_image(folder / "still.png", frames[0])
    return write_video(folder / "film.mp4", frames)


def colorize(film: Path, out: Path, *extra: object) -> int:
    return commands.main([str(a) for a in ("colorize", film, "--ref", film.with_name("still.png"), "-o", out,
                                           "--size", W * H, "--backend", "propagate", "--codec", "ffv1", *extra)])


@pytest.fixture(scope="module")
def serial(film, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("serial") / "out.mkv"
    assert colorize(film, out) == 0
    return out.read_bytes()


@pytest.fixture
def driver(tmp_path, monkeypatch) -> Path:
    """The machine the render is started from: a HOME of its own (no token yet), and none of
    Ray's settings in the environment."""
    home = tmp_path / "driver-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in AUTH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


def machine(tmp_path_factory, name: str) -> Path:
    """A HOME for one machine of a cluster."""
    return tmp_path_factory.mktemp(name)


def environment(home: Path, **settings: str) -> dict[str, str]:
    """A machine's environment: its HOME, `ray` on its PATH, none of Ray's settings but ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    return {**env, "HOME": str(home), "PATH": f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}", **settings}


def generate_token(home: Path) -> str:
    """The token Ray makes in HOME/.ray/auth_token (as any `--ray` run without an address does)."""
    subprocess.run([RAY, "get-auth-token", "--generate"], env=environment(home), check=True, capture_output=True,
                   timeout=60)
    return (home / ".ray" / "auth_token").read_text()


@contextlib.contextmanager
def ray_started(cluster: list[subprocess.Popen], args: list[str], env: dict[str, str], log: Path
                ) -> Iterator[None]:
    """`ray start ARGS` for the block; everything it started is stopped after it."""
    with open(log, "ab") as out:
        process = subprocess.Popen([str(RAY), "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    cluster.append(process)
    try:
        yield
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop a `ray start --block` and what it started: its session (by that id, nothing else).
    A node drains for up to 30 s when asked to stop; a test's need not."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for_nodes(address: str, count: int, home: Path, log: Path, deadline_s: float = 90) -> None:
    """Wait until the cluster at ``address`` has ``count`` live nodes (asked with HOME's token)."""
    ask = ("import sys; from ray._raylet import GcsClient; "
           "print(sum(n.state == 0 for n in GcsClient(address=sys.argv[1]).get_all_node_info(timeout=5).values()))")
    env = environment(home, RAY_AUTH_MODE="token" if (home / ".ray" / "auth_token").exists() else "disabled")
    deadline = time.monotonic() + deadline_s
    alive = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            host, port = address.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=1).close()
            done = subprocess.run([sys.executable, "-c", ask, address], env=env, capture_output=True, text=True,
                                  timeout=30)
            alive = done.stdout.strip()
            if alive == str(count):
                return
        time.sleep(0.5)
    pytest.fail(f"the cluster at {address} has {alive or 'no'} live nodes, not {count}:\n{log.read_text()[-3000:]}")


def temp_dir() -> str:
    """Ray's session folder: short (its socket paths must stay under 108 characters)."""
    return tempfile.mkdtemp(prefix="vsx-ray-", dir="/tmp")


def errors(capfd) -> list[str]:
    """What reached stderr (Ray's own logging included) as it ends up on a terminal (progress
    bars redraw with \\r)."""
    return [kept for line in capfd.readouterr().err.split("\n") if (kept := line.split("\r")[-1].strip())]


def nothing_written(out: Path) -> bool:
    return not out.exists() and not out.with_name(out.name + ".parts").exists()


@pytest.fixture(scope="class")
def token_cluster(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A cluster that requires a token: a head on OUTSIDE and a second node, each with the
    token in its ~/.ray/auth_token and RAY_AUTH_MODE=token; its address and the token. The
    head takes no tasks, so they all run on the second node, which had to join with the token
    and whose workers reach the cluster with it too."""
    if not OUTSIDE:
        pytest.skip("needs an address that is not loopback on loopback: run through tests/test_farm.py")
    head, other = machine(tmp_path_factory, "head"), machine(tmp_path_factory, "other")
    token = generate_token(head)
    (other / ".ray").mkdir()
    shutil.copy(head / ".ray" / "auth_token", other / ".ray" / "auth_token")
    address, log, folder = f"{OUTSIDE}:6380", head / "ray.log", temp_dir()
    started: list[subprocess.Popen] = []
    try:
        with ray_started(started, ["--head", "--port", "6380", "--node-ip-address", OUTSIDE, "--temp-dir", folder,
                                   "--include-dashboard", "false", "--num-cpus", "0", *QUIET],
                         environment(head, RAY_AUTH_MODE="token"), log):
            wait_for_nodes(address, 1, head, log)
            with ray_started(started, ["--address", address, "--node-ip-address", OUTSIDE, "--num-cpus", "1", *QUIET],
                             environment(other, RAY_AUTH_MODE="token"), log):
                wait_for_nodes(address, 2, head, log)
                yield address, token
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class TestAClusterThatRequiresAToken:
    """A head on OUTSIDE and a second node that renders, started with a token (stopped after
    these tests)."""

    def test_renders_as_here_with_the_token_given(self, film, serial, token_cluster, driver, tmp_path, capfd):
        address, token = token_cluster
        (driver / ".ray").mkdir()
        (driver / ".ray" / "auth_token").write_text(token)  # copied from the head, as the README says
        out = tmp_path / "out.mkv"
        assert colorize(film, out, "--ray", address) == 0
        assert_same_bytes(out, serial)
        summary = errors(capfd)[-1]
        assert re.search(rf" on \S+ {re.escape(OUTSIDE)} node \w+: 32 frames$", summary), summary  # the second
        assert os.environ.get("RAY_AUTH_MODE") is None  # the run leaves this process's Ray settings as they were

    @pytest.mark.parametrize("token", ["missing", "wrong"])
    def test_a_missing_or_wrong_token_is_one_line_within_30_seconds_and_writes_nothing(self, film, token_cluster,
                                                                                      driver, token, tmp_path,
                                                                                      capfd):
        address, _ = token_cluster
        if token == "wrong":
            (driver / ".ray").mkdir()
            (driver / ".ray" / "auth_token").write_text("0" * 32)
        out = tmp_path / "out.mkv"
        capfd.readouterr()
        began = time.monotonic()
        assert colorize(film, out, "--ray", address) == 2
        assert time.monotonic() - began < 30
        assert nothing_written(out)
        lines = errors(capfd)
        assert len(lines) == 1, lines
        here = driver / ".ray" / "auth_token"
        assert lines[0] == f"vsexcolor colorize: the Ray cluster at {address} " + (
            f"requires a token and this machine has none: copy the head's ~/.ray/auth_token to {here} (or set "
            "RAY_AUTH_TOKEN_PATH to a copy)" if token == "missing" else
            f"refuses the token in {here}: use the one it was started with (the head's ~/.ray/auth_token)")


def test_a_cluster_that_requires_no_token_is_refused_unless_insecure_cluster_is_given(film, serial, driver,
                                                                                       tmp_path_factory, tmp_path,
                                                                                       capfd):
    if not OUTSIDE:
        pytest.skip("needs an address that is not loopback on loopback: run through tests/test_farm.py")
    head = machine(tmp_path_factory, "open-head")
    generate_token(driver)  # a token here changes nothing: the cluster asks for none
    address, log, folder = f"{OUTSIDE}:6381", head / "ray.log", temp_dir()
    try:
        with ray_started([], ["--head", "--port", "6381", "--node-ip-address", OUTSIDE, "--temp-dir", folder,
                              "--include-dashboard", "false", "--num-cpus", "1", *QUIET],
                         environment(head, RAY_AUTH_MODE="disabled"),
                         log):
            wait_for_nodes(address, 1, head, log)
            out = tmp_path / "out.mkv"
            capfd.readouterr()
            assert colorize(film, out, "--ray", address) == 2
            assert nothing_written(out)
            assert errors(capfd) == [
                f"vsexcolor colorize: the Ray cluster at {address} requires no token, so anyone who reaches its ports "
                "can run any code on its machines: restart it with RAY_AUTH_MODE=token on every machine (README, "
                "\"Rendering on a cluster\"), or add --insecure-cluster to use it as it is"]
            assert colorize(film, out, "--ray", address, "--insecure-cluster") == 0
            assert_same_bytes(out, serial)
            lines = errors(capfd)
            assert (
                f"vsexcolor colorize: WARNING: --insecure-cluster: the Ray cluster at {address} requires no token; "
                "anyone who reaches its ports can run any code on its machines, this one included, and read or "
                "change what they render") in lines, lines
            assert lines[-1].startswith("vsexcolor colorize: wrote ")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def readme_recipe() -> list[str]:
    """The commands of the README's cluster recipe, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Rendering on a cluster"):]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)[1]
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.split(" #")[0].strip()]


def test_the_readme_recipe_works_on_one_machine_that_holds_a_token_already(film, serial, driver, tmp_path, capfd,
                                                                           monkeypatch):
    # A new user on one machine, after a `--ray` run without an address (which leaves Ray's
    # token in ~/.ray/auth_token): the recipe, HEAD being this machine, as typed.
    token = generate_token(driver)
    generate, export, head, other, render = readme_recipe()
    assert generate == "ray get-auth-token --generate > /dev/null && chmod 600 ~/.ray/auth_token"
    assert export == "export RAY_AUTH_MODE=token"
    assert head == "ray start --head --port 6379"
    assert other == "ray start --address HEAD:6379"  # for other machines: as the second node above
    assert render.startswith("vsexcolor colorize ") and render.endswith(" --ray HEAD:6379")
    subprocess.run(generate, shell=True, env=environment(driver), check=True, timeout=60)
    assert (driver / ".ray" / "auth_token").read_text() == token  # kept, not replaced
    assert (driver / ".ray" / "auth_token").stat().st_mode & 0o077 == 0
    name, value = export.removeprefix("export ").split("=")
    log, folder = tmp_path / "ray.log", temp_dir()
    try:
        with ray_started([], [*shlex.split(head)[2:], "--node-ip-address", "127.0.0.1", "--temp-dir", folder,
                              "--include-dashboard", "false", "--num-cpus", "1", *QUIET],
                         environment(driver, **{name: value}), log):
            wait_for_nodes("127.0.0.1:6379", 1, driver, log)
            # The render from the shell the user started Ray in, and from another without
            # RAY_AUTH_MODE: both find the token and send it.
            out = tmp_path / "out.mkv"
            options = shlex.split(render)[2:]
            assert options[options.index("--codec") + 1] == "ffv1"
            monkeypatch.setenv(name, value)
            assert colorize(film, out, "--ray", "127.0.0.1:6379") == 0, errors(capfd)
            assert_same_bytes(out, serial)
            monkeypatch.delenv(name)
            again = tmp_path / "again.mkv"
            assert colorize(film, again, "--ray", "127.0.0.1:6379") == 0, errors(capfd)
            assert_same_bytes(again, serial)
            assert not [line for line in errors(capfd) if "InvalidAuthToken" in line or "Traceback" in line]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_readme_recipe_works_on_two_machines_from_nothing(film, serial, driver, tmp_path_factory, tmp_path,
                                                              capfd):
    # A new user's two machines, HEAD being OUTSIDE: the token made on the head and copied
    # (as scp would) to the other machine and to the one rendering, every line as typed.
    if not OUTSIDE:
        pytest.skip("needs an address that is not loopback on loopback: run through tests/test_farm.py")
    generate, export, head_line, other_line, render = readme_recipe()
    head, other = machine(tmp_path_factory, "recipe-head"), machine(tmp_path_factory, "recipe-other")
    subprocess.run(generate, shell=True, env=environment(head), check=True, timeout=60)
    for home in (other, driver):
        (home / ".ray").mkdir()
        shutil.copy2(head / ".ray" / "auth_token", home / ".ray" / "auth_token")
    name, value = export.removeprefix("export ").split("=")

    def typed(line: str) -> list[str]:
        return shlex.split(line.replace("HEAD", OUTSIDE))[2:]

    address, log, folder = f"{OUTSIDE}:6379", tmp_path / "ray.log", temp_dir()
    started: list[subprocess.Popen] = []
    try:
        # The head takes no tasks: every frame is made by the machine that joined it.
        with ray_started(started, [*typed(head_line), "--node-ip-address", OUTSIDE, "--temp-dir", folder,
                                   "--include-dashboard", "false", "--num-cpus", "0", *QUIET],
                         environment(head, **{name: value}), log):
            wait_for_nodes(address, 1, head, log)
            with ray_started(started, [*typed(other_line), "--node-ip-address", OUTSIDE, "--num-cpus", "1", *QUIET],
                             environment(other, **{name: value}), log):
                wait_for_nodes(address, 2, head, log)
                out = tmp_path / "out.mkv"
                assert typed(render)[-2:] == ["--ray", address]
                capfd.readouterr()
                assert colorize(film, out, *typed(render)[-2:]) == 0, errors(capfd)
                assert_same_bytes(out, serial)
                summary = errors(capfd)[-1]
                assert re.search(rf" on \S+ {re.escape(OUTSIDE)} node \w+: 32 frames$", summary), summary
    finally:
        shutil.rmtree(folder, ignore_errors=True)
