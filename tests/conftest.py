import resource
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test helpers (detnets, clips) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

import detnets  # noqa: E402
import vsexcolor  # noqa: E402

# The cluster tests start Ray, which must not reach past loopback: tests/test_farm.py runs
# them in a network namespace of their own (where loopback is the only interface).
if [name for _, name in socket.if_nameindex()] != ["lo"]:
    collect_ignore = ["cluster"]


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path_factory, monkeypatch) -> Path:
    """Weights or keyframe models in this machine's model folder would change what the tests
    see: each test starts with an empty one (and may point it elsewhere)."""
    folder = tmp_path_factory.getbasetemp() / "empty-model-folder"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def index_folder(tmp_path_factory) -> Iterator[Path]:
    """Video indexes go to a folder of the test session's, not this machine's cache: from
    the session's start, since module fixtures read files too."""
    folder = tmp_path_factory.getbasetemp() / "video-indexes"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VSEXCOLOR_INDEX_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def devc_weights(tmp_path_factory) -> Path:
    """A folder in the official unpacked layout holding the deterministic test weights."""
    return detnets.write_unpacked(tmp_path_factory.mktemp("devc-weights"))



@pytest.fixture
def run(devc_weights):
    """``vsexcolor.colorize`` on the DEVC test weights at a tiny internal size (48 x 64, which
    keeps the networks fast on the CPU), unless the keywords say otherwise."""
    def colorize(clip, ref, **kwargs):
        kwargs.setdefault("backend", "devc")
        kwargs.setdefault("weights", devc_weights)
        kwargs.setdefault("pixels", 48 * 64)
        return vsexcolor.colorize(clip, ref, **kwargs)
    return colorize

# The suite runs in one process on CI machines of 24 GB; a node that kept its memory once
# took it to 20 GB and the kernel killed it. The peak is reported, and bounded.
PEAK_RSS_LIMIT_GB = 8.0


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB


def pytest_terminal_summary(terminalreporter):
    peak = _peak_rss_gb()
    verdict = "over" if peak > PEAK_RSS_LIMIT_GB else "within"
    terminalreporter.write_line(f"peak resident memory of the test process: {peak:.2f} GB "
                                f"({verdict} the {PEAK_RSS_LIMIT_GB:.0f} GB limit)")


def pytest_sessionfinish(session, exitstatus):
    if _peak_rss_gb() > PEAK_RSS_LIMIT_GB and exitstatus == 0:
        session.exitstatus = 1
