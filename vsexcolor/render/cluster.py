"""Reaching Ray for ``--ray``: which cluster, whether it lets strangers in, and a session on it.

A Ray cluster runs whatever it is sent on every machine, so one that requires no token lets
anyone who reaches its ports do so (docs/scale-out.md, "What a cluster can do to its
machines"). Before anything is written, :func:`check` asks the cluster at an address (in a
short process of its own, so that Ray's retries cannot hold the command for minutes and
Ray's settings in this process stay as they were) whether it answers without a token, and if
not, whether it takes ours. A cluster that answers without one is refused on an address that
is not loopback, or on loopback where its port listens beyond loopback too, unless the user
opts out (``--insecure-cluster``). :func:`session` then
joins it, sending the token only where the cluster requires one; a Ray started here always
requires one.

The token is found where Ray looks for it: ``$RAY_AUTH_TOKEN``, else the file
``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .pipeline import RenderError

#: Ray 2.52 brought token authentication.
MIN_RAY = (2, 52)
#: Seconds to wait for a cluster's address to take a connection.
CONNECT_TIMEOUT_S = 10
#: Seconds to wait for the cluster to answer whether it requires a token (Ray itself retries
#: for half a minute or more where nothing answers its protocol).
PROBE_TIMEOUT_S = 15
AUTH_MODE = "RAY_AUTH_MODE"

# Run as `python -c PROBE ADDRESS` with RAY_AUTH_MODE=disabled; prints one JSON line:
# {"token": false} (the cluster answers without one), or {"token": true, "ours": "ok" |
# "missing" | "wrong" | "unreadable", "why": ...}, or {"error": ...}.
PROBE = r"""
import json, os, sys
address = sys.argv[1]

def answer(**what):
    print(json.dumps(what), flush=True)
    sys.exit(0)

try:
    from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
    from ray.exceptions import AuthenticationError
except ImportError as e:
    answer(error=f"this Ray has no token authentication ({e})")

def asks(token):
    os.environ["RAY_AUTH_MODE"] = "token" if token else "disabled"
    Config.initialize("")
    try:
        client = GcsClient(address=address)
        client.internal_kv_get(b"session_name", namespace=b"session", timeout=5)
        return True
    except AuthenticationError:
        return False

try:
    if asks(token=False):
        answer(token=False)
    try:
        has = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
    except Exception as e:
        answer(token=True, ours="unreadable", why=str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
    if not has:
        answer(token=True, ours="missing")
    answer(token=True, ours="ok" if asks(token=True) else "wrong")
except Exception as e:
    lines = str(e).strip().splitlines()
    answer(error=lines[0] if lines else type(e).__name__)
"""


@dataclass(frozen=True)
class Access:
    """How to reach Ray: ``address`` None for a Ray started here; ``token``: send the token."""

    address: str | None
    token: bool


def ray_module():
    """Ray, if it is installed and has token authentication."""
    try:
        import ray
    except ImportError:
        raise RenderError("--ray needs Ray: pip install 'vsexcolor[cluster]'") from None
    if _version(ray.__version__) < MIN_RAY:
        raise RenderError(f"--ray needs Ray {'.'.join(map(str, MIN_RAY))} or newer (token authentication), this is "
                          f"Ray {ray.__version__}: pip install -U 'vsexcolor[cluster]'")
    return ray


def check(address: str | None, *, insecure: bool = False, warn: Callable[[str], None] | None = None) -> Access:
    """The cluster at ``address`` (or $RAY_ADDRESS; neither: a Ray started here) checked:
    reachable, answering Ray's protocol, and either requiring a token that ours matches, or
    requiring none where that is allowed (a loopback address, or ``insecure``, which
    ``warn``s). Raises RenderError (one line) otherwise, within about 25 s."""
    ray_module()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:
        return Access(None, token=True)
    if address == "auto":
        address = _started_here()
    host, port = _split(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise RenderError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                          "`ray start --head`, or check the address") from None
    found = _probe(address)
    if "error" in found:
        raise RenderError(f"cannot join the Ray cluster at {address}: {found['error']}")
    if not found["token"]:
        _open_cluster(address, host, port, insecure, warn or (lambda text: None))
        return Access(address, token=False)
    ours = found["ours"]
    if ours == "ok":
        return Access(address, token=True)
    if ours == "missing":
        raise RenderError(
            f"the Ray cluster at {address} requires a token and this machine has none: copy the head's "
            f"~/.ray/auth_token to {Path.home() / '.ray' / 'auth_token'} (or set RAY_AUTH_TOKEN_PATH to a copy)")
    if ours == "unreadable":
        raise RenderError(f"the Ray cluster at {address} requires a token and this machine's cannot be read: "
                          f"{found.get('why', '')}")
    raise RenderError(f"the Ray cluster at {address} refuses the token in {token_source()}: use the one it was "
                      "started with (the head's ~/.ray/auth_token)")


def _open_cluster(address: str, host: str, port: int, insecure: bool, warn: Callable[[str], None]) -> None:
    """Refuse the cluster at ``address``, which requires no token, where others may reach it:
    on an address that is not loopback, or on loopback where this machine listens on its port
    beyond loopback too (Ray binds its head where its node address says, which need not be
    the address a user names it by, and some versions bind every interface); unless
    ``insecure``, which ``warn``s. Where that cannot be told, it ``warn``s."""
    on_loopback = is_loopback_host(host)
    listening = _listening(port) if on_loopback else []
    beyond = [ip for ip in listening or [] if not _is_loopback(ip)]
    if on_loopback and listening and not beyond:
        return  # only this machine reaches it
    if on_loopback and listening is None:
        warn(f"WARNING: the Ray cluster at {address} requires no token, and where it listens cannot be told here: if it "
             "listens beyond loopback, anyone who reaches its ports can run any code on its machines; restart it with "
             f"{AUTH_MODE}=token to be sure")
        return
    if not insecure:
        where = f" and listens beyond loopback (on {beyond[0]})" if beyond else ""
        raise RenderError(
            f"the Ray cluster at {address} requires no token{where}, so anyone who reaches its ports can run any code "
            f"on its machines: restart it with {AUTH_MODE}=token on every machine (README, \"Rendering on a "
            "cluster\"), or add --insecure-cluster to use it as it is")
    warn(f"WARNING: --insecure-cluster: the Ray cluster at {address} requires no token; anyone who reaches "
         "its ports can run any code on its machines, this one included, and read or change what they render")


@contextlib.contextmanager
def session(ray, access: Access, *, workers: int | None = None, gpu: bool = False) -> Iterator[None]:
    """Ray joined (or started here) for the ``with`` block, and shut down after it. The token
    is sent (or required, by a Ray started here) where ``access.token``; this process's
    RAY_AUTH_MODE is as before afterwards."""
    from ray._raylet import AuthenticationTokenLoader, Config

    before = os.environ.get(AUTH_MODE)
    try:
        try:
            os.environ[AUTH_MODE] = "token" if access.token else "disabled"
            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()  # read the token as it is now
            if access.address:
                ray.init(address=access.address, logging_level="ERROR", log_to_driver=False)
            else:
                # Every task takes a CPU (planning runs no network); rendering takes a GPU too
                # where the networks run on one. A token is made in ~/.ray/auth_token if missing.
                cpus = os.cpu_count() if gpu else workers or os.cpu_count()
                ray.init(num_cpus=cpus, num_gpus=workers if gpu else None, include_dashboard=False,
                         logging_level="ERROR", log_to_driver=False)
        except Exception as e:
            lines = str(e).strip().splitlines()
            cause = lines[0] if lines else type(e).__name__
            raise RenderError(f"cannot join the Ray cluster at {access.address}: {cause}" if access.address
                              else f"cannot start Ray here: {cause}") from None
        yield
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop(AUTH_MODE, None)
        else:
            os.environ[AUTH_MODE] = before
        Config.initialize("")


def token_source() -> str:
    """Where Ray takes this machine's token from."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "$RAY_AUTH_TOKEN"
    if path := os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return path
    return str(Path.home() / ".ray" / "auth_token")


def _probe(address: str) -> dict:
    """What the cluster at ``address`` says about tokens, asked from a process of its own."""
    env = {**os.environ, AUTH_MODE: "disabled", "RAY_ADDRESS": ""}
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, address], env=env, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": f"nothing there answered Ray's protocol within {PROBE_TIMEOUT_S} s; check the address "
                         "(that of `ray start --head`)"}
    for line in reversed(done.stdout.splitlines()):
        with contextlib.suppress(ValueError):
            found = json.loads(line)
            if isinstance(found, dict):
                return found
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return {"error": lines[-1] if lines else f"the check exited with {done.returncode}"}


def _started_here() -> str:
    """The address of the cluster ``ray start --head`` started on this machine, found as Ray
    finds it for ``auto`` (the address it noted, else the one cluster running here)."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError:
        raise RenderError("--ray auto: no Ray cluster was started on this machine; start one with `ray start --head`, "
                          "or give its HOST:PORT") from None


def _split(address: str) -> tuple[str, int]:
    if address.startswith("ray://"):  # Ray Client's port (10001) takes no tasks from this driver
        raise RenderError("--ray takes the address of `ray start --head` (HOST:PORT, port 6379 unless --port changed "
                          f"it), not a Ray Client address (ray://...): give the head's HOST:PORT, got {address!r}")
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise RenderError(f"--ray takes HOST:PORT (that of `ray start --head`; a port of 1 to 65535), got {address!r}")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """Whether every address ``host`` (a name or an address) names is a loopback one: only
    this machine reaches it."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    try:
        return bool(found) and all(_is_loopback(ip) for ip in found)
    except ValueError:
        return False


def _listening(port: int) -> list[str] | None:
    """The addresses this machine listens on at TCP ``port`` (``0.0.0.0`` and ``::`` are every
    interface), from Linux's tables of sockets; None where there are none to read, or they
    show nothing listening there (a head in another network namespace)."""
    found, read = [], False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        read = True
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            where, _, at = local.partition(":")
            if state == _LISTEN and int(at, 16) == port:
                found.append(_address(where))
    return found if read and found else None


#: A listening socket's state in Linux's tables.
_LISTEN = "0A"


def _address(hex_address: str) -> str:
    """An address as Linux's socket tables write it: 32-bit words, each in this machine's
    byte order."""
    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, as Ray's head binds 127.0.0.1
    return (mapped or address).is_loopback


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit()) if piece else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
