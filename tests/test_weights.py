"""Finding, loading, checking and downloading the DEVC weights (no real weights: detnets' ones)."""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from detnets import FILES, state_dicts
from media import declare_size

from vsexcolor.commands import main
from vsexcolor.weights.devc import (ZIP_NAME, WeightsError, default_model_dir, describe, download,
                               find_weights, load_nets)

REPO = Path(__file__).parents[1]
VGG, NONLOCAL, COLORNET = FILES


@dataclass(frozen=True)
class Official:
    """The official checkpoint layout filled with deterministic weights."""

    folder: Path  # unpacked: data/ and checkpoints/
    zip: Path  # colorization_checkpoint.zip
    state: dict[str, dict[str, torch.Tensor]]  # by official relative path


@pytest.fixture(autouse=True)
def _free_disk(tmp_path: Path) -> Iterator[None]:
    # A test here writes up to ~500 MB, and pytest keeps the temporary folders of 3 sessions.
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="session")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Official]:
    root = tmp_path_factory.mktemp("official")
    state = state_dicts()
    folder = root / "unpacked"
    for name, sd in state.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(sd, folder / name)
    zip_path = root / ZIP_NAME
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
        for name in FILES:
            archive.write(folder / name, name)
        archive.writestr("data/vgg19_gray.pth", b"the real zip holds this too; it is never read")
    yield Official(folder, zip_path, state)
    shutil.rmtree(root, ignore_errors=True)


def assert_loaded(nets: tuple[torch.nn.Module, ...], official: Official) -> None:
    for net, name in zip(nets, FILES):
        loaded, source = net.state_dict(), official.state[name]
        assert list(loaded) == list(source)
        assert all(torch.equal(loaded[k], source[k]) for k in source), name
        assert not net.training


def unpacked(folder: Path, official: Official, replace: dict[str, object | None] | None = None) -> Path:
    """An official-layout folder linking to the session's files.

    ``replace`` maps an official path to an object to ``torch.save`` there instead, or to None
    to leave the file out.
    """
    replace = replace or {}
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name not in replace:
            (folder / name).symlink_to(official.folder / name)
        elif replace[name] is not None:
            torch.save(replace[name], folder / name)
    return folder


def small_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def vsexcolor(*args: str, model_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"VSEXCOLOR_MODEL_DIR": str(model_dir)}
    return subprocess.run([sys.executable, "-m", "vsexcolor", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


# --- where the weights are looked for ---------------------------------------------------------

def test_model_dir_is_the_environment_variable_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_model_dir() == tmp_path / "models"


def test_model_dir_defaults_to_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.delenv("VSEXCOLOR_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_model_dir() == tmp_path / "xdg" / "vsexcolor"


@pytest.mark.parametrize("xdg", [None, "", "relative/data"])
def test_model_dir_falls_back_to_local_share_without_a_usable_xdg_data_home(monkeypatch, tmp_path, xdg):
    monkeypatch.delenv("VSEXCOLOR_MODEL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    assert default_model_dir() == tmp_path / ".local" / "share" / "vsexcolor"


def test_model_dir_on_windows_is_under_localappdata(monkeypatch, tmp_path):
    monkeypatch.delenv("VSEXCOLOR_MODEL_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    assert default_model_dir() == tmp_path / "vsexcolor"


def test_find_accepts_the_zip_the_unpacked_folder_or_a_folder_holding_the_zip(official, monkeypatch):
    assert find_weights(official.zip) == official.zip
    assert find_weights(str(official.folder)) == official.folder
    assert find_weights(official.zip.parent) == official.zip
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(official.zip.parent))
    assert find_weights() == official.zip


def test_find_names_a_missing_location_and_what_to_do(tmp_path):
    with pytest.raises(WeightsError, match=rf"no DEVC weights at {re.escape(str(tmp_path / 'gone'))}: "
                                           r"it does not exist\. Run `vsexcolor download`, set VSEXCOLOR_MODEL_DIR"):
        find_weights(tmp_path / "gone")


def test_find_names_an_empty_folder_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=rf"no DEVC weights in {re.escape(str(tmp_path))}: it holds neither "
                                           rf"{ZIP_NAME} nor unpacked data/ and checkpoints/ folders\. "
                                           r"Run `vsexcolor download`"):
        find_weights()


# --- loading ----------------------------------------------------------------------------------

def test_nets_load_from_the_zip(official):
    assert_loaded(load_nets(official.zip), official)


def test_nets_load_from_the_unpacked_folder(official):
    assert_loaded(load_nets(official.folder), official)


def test_a_zip_whose_files_sit_under_one_top_level_folder_is_read(tmp_path):
    path = small_zip(tmp_path / ZIP_NAME, {f"colorization_checkpoint/{name}": b"junk" for name in FILES})
    # Reaching the content of the first file shows that the layout was recognised.
    with pytest.raises(WeightsError, match=rf"colorization_checkpoint/{VGG} in .* is not a PyTorch checkpoint"):
        load_nets(path)


def test_the_highest_iteration_with_both_files_is_used(official, tmp_path):
    folder = unpacked(tmp_path, official)
    runs = tmp_path / "checkpoints"
    (runs / "mine").mkdir()
    for n in (100000, 200000):
        (runs / "mine" / f"nonlocal_net_iter_{n}.pth").symlink_to(official.folder / NONLOCAL)
    (runs / "mine" / "colornet_iter_100000.pth").symlink_to(official.folder / COLORNET)
    report = describe(folder)
    assert report.files == (VGG, "checkpoints/mine/nonlocal_net_iter_100000.pth",
                            "checkpoints/mine/colornet_iter_100000.pth")
    assert report.valid


def test_describe_reports_a_valid_checkpoint(official, monkeypatch):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(official.zip.parent))
    report = describe()
    assert (report.looked_in, report.origin, report.found) == (
        official.zip.parent, "from $VSEXCOLOR_MODEL_DIR", official.zip)
    assert report.files == FILES
    assert report.valid and report.error is None


def test_describe_reports_why_there_are_no_weights(tmp_path):
    report = describe(tmp_path)
    assert (report.looked_in, report.origin, report.found, report.files) == (tmp_path, "given", None, ())
    assert not report.valid
    assert report.error.startswith(f"no DEVC weights in {tmp_path}")


def test_a_truncated_zip_is_named_with_what_to_do(official, tmp_path):
    path = tmp_path / ZIP_NAME
    with official.zip.open("rb") as whole:
        path.write_bytes(whole.read(1 << 20))
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))} is not a readable zip file "
                                           r"\(.*\)\. Run `vsexcolor download`"):
        load_nets(path)


def test_a_damaged_zip_member_is_named(tmp_path):
    good = small_zip(tmp_path / "good.zip", {VGG: b"A" * 1000, NONLOCAL: b"", COLORNET: b""}).read_bytes()
    path = tmp_path / ZIP_NAME
    path.write_bytes(good.replace(b"A" * 1000, b"A" * 999 + b"B"))
    with pytest.raises(WeightsError, match=rf"cannot read {VGG} in {re.escape(str(path))}: it is damaged "
                                           r"or unreadable \(Bad CRC-32.*\)\. Run `vsexcolor download`"):
        load_nets(path)


@pytest.fixture
def one_mib_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints may come to 1 MiB unpacked (the cap stands in for the real one, 2 GiB)."""
    monkeypatch.setattr("vsexcolor.weights.checkpoints.MAX_CHECKPOINT_BYTES", 1 << 20)


def test_a_zip_member_declaring_more_than_the_cap_is_refused_before_it_is_read(tmp_path, one_mib_cap, monkeypatch):
    path = tmp_path / ZIP_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:  # 2 MiB that deflate to 2 KiB
        for name in FILES:
            archive.writestr(name, bytes(2 << 20))
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("read"))
    with pytest.raises(WeightsError) as raised:
        load_nets(path)
    assert str(raised.value) == (f"{VGG} in {path} comes to more than 1 MiB unpacked, more than any checkpoint: it "
                                 f"is damaged, or not a checkpoint. Run `vsexcolor download` to fetch the official "
                                 f"checkpoint (it replaces a damaged one), or pass the path of a valid checkpoint.")


def test_an_unpacked_file_larger_than_the_cap_is_refused_before_it_is_read(tmp_path, one_mib_cap):
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(bytes(2 << 20))
    with pytest.raises(WeightsError, match=rf"^{VGG} in {re.escape(str(tmp_path))} comes to more than 1 MiB unpacked"):
        load_nets(tmp_path)


def test_a_checkpoint_whose_records_declare_more_than_the_cap_is_refused_before_torch_reads_them(
        tmp_path, one_mib_cap, monkeypatch):
    member = tmp_path / "member.pth"
    torch.save({"weight": torch.zeros(1000)}, member)  # torch.save writes a zip, and torch reads
    with zipfile.ZipFile(member) as archive:           # each of its records at the size it declares
        (record,) = [name for name in archive.namelist() if name.endswith("/data/0")]
    declare_size(member, record, 2 << 20)
    path = small_zip(tmp_path / ZIP_NAME, {name: member.read_bytes() for name in FILES})
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("loaded"))
    with pytest.raises(WeightsError, match=rf"^{VGG} in {re.escape(str(path))} comes to more than 1 MiB unpacked"):
        load_nets(path)


def test_a_zip_member_that_inflates_past_its_declared_size_is_read_no_further(tmp_path):
    # A bomb's other form: it declares little and inflates to much. The read stops at what
    # it declares, and the bytes are then named as damaged.
    path = tmp_path / ZIP_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in FILES:
            archive.writestr(name, bytes(2 << 20))
    for name in FILES:
        declare_size(path, name, 1000)
    with pytest.raises(WeightsError, match=rf"^cannot read {VGG} in {re.escape(str(path))}: it is damaged"):
        load_nets(path)


def test_a_file_that_is_not_a_pytorch_checkpoint_is_named(tmp_path):
    path = small_zip(tmp_path / ZIP_NAME, {VGG: b"junk", NONLOCAL: b"junk", COLORNET: b"junk"})
    with pytest.raises(WeightsError, match=rf"{VGG} in {re.escape(str(path))} is not a PyTorch checkpoint \(.+\)\. "
                                           r"Run `vsexcolor download`"):
        load_nets(path)


def test_a_checkpoint_that_is_not_a_state_dict_is_named(official, tmp_path):
    folder = unpacked(tmp_path, official, {VGG: [torch.zeros(3)]})
    with pytest.raises(WeightsError, match=rf"{VGG} in {re.escape(str(folder))} is not a state dict"):
        load_nets(folder)


def test_a_wrong_key_is_named(official, tmp_path):
    state = dict(official.state[NONLOCAL])
    state["bogus.weight"] = state.pop("layer2_1.1.weight")
    folder = unpacked(tmp_path, official, {NONLOCAL: state})
    with pytest.raises(WeightsError, match=rf"{NONLOCAL} in {re.escape(str(folder))} does not fit WarpNet: "
                                           r"missing keys layer2_1\.1\.weight; unexpected keys bogus\.weight\. "
                                           r"Run `vsexcolor download`"):
        load_nets(folder)


def test_a_wrong_shape_is_named(official, tmp_path):
    state = dict(official.state[NONLOCAL])
    state["layer2_1.1.bias"] = torch.zeros(64)
    folder = unpacked(tmp_path, official, {NONLOCAL: state})
    with pytest.raises(WeightsError, match=rf"{NONLOCAL} in .* does not fit WarpNet: "
                                           r"wrong shapes: layer2_1\.1\.bias \[64\] \(expected \[128\]\)\. "):
        load_nets(folder)


def test_a_file_of_another_network_names_a_few_keys_and_counts_the_rest(official, tmp_path):
    folder = unpacked(tmp_path, official, {NONLOCAL: None})
    (folder / NONLOCAL).symlink_to(official.folder / VGG)
    n_warpnet, n_vgg = len(official.state[NONLOCAL]), len(official.state[VGG])
    with pytest.raises(WeightsError, match=rf"does not fit WarpNet: missing keys ([^,;]+, ){{3}}[^,;]+ "
                                           rf"\(and {n_warpnet - 4} more\); unexpected keys "
                                           r"conv1_1\.weight, conv1_1\.bias, conv1_2\.weight, conv1_2\.bias "
                                           rf"\(and {n_vgg - 4} more\)\. "):
        load_nets(folder)


def test_a_missing_vgg_file_is_named(tmp_path):
    path = small_zip(tmp_path / ZIP_NAME, {NONLOCAL: b"", COLORNET: b""})
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))} has no data/vgg19_conv\.pth\. "
                                           r"Run `vsexcolor download`"):
        load_nets(path)


def test_a_checkpoint_without_a_matching_colornet_is_named(official, tmp_path):
    folder = unpacked(tmp_path, official, {COLORNET: None})
    (folder / "checkpoints/video_moredata_l1/colornet_iter_75000.pth").symlink_to(official.folder / COLORNET)
    with pytest.raises(WeightsError, match=rf"{re.escape(str(folder))} has no "
                                           r"checkpoints/<run>/nonlocal_net_iter_N\.pth "
                                           r"with a colornet_iter_N\.pth of the same N beside it\. "
                                           r"Run `vsexcolor download`"):
        load_nets(folder)


# --- downloading ------------------------------------------------------------------------------

def test_download_from_a_file_url_into_the_model_dir_keeps_only_the_checked_zip(
        official, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "models"))
    final = download(official.zip.as_uri())
    assert final == tmp_path / "models" / ZIP_NAME
    assert filecmp.cmp(final, official.zip, shallow=False)
    assert sorted(p.name for p in final.parent.iterdir()) == [ZIP_NAME]
    assert f"saved {final}" in capsys.readouterr().err


def test_download_does_nothing_when_valid_weights_are_there(official, tmp_path, capsys):
    final = tmp_path / ZIP_NAME
    os.link(official.zip, final)
    # The URL would fail: it must not be used.
    assert download((tmp_path / "nowhere.zip").as_uri(), tmp_path) == final
    assert final.stat().st_ino == official.zip.stat().st_ino
    assert f"valid weights are already at {final}; nothing to download" in capsys.readouterr().err


def test_download_replaces_a_damaged_zip(official, tmp_path, capsys):
    final = tmp_path / ZIP_NAME
    final.write_bytes(b"half a zip")
    assert download(official.zip.as_uri(), tmp_path) == final
    assert filecmp.cmp(final, official.zip, shallow=False)
    assert f"{final} is not usable" in capsys.readouterr().err


def test_download_of_something_else_leaves_neither_the_zip_nor_the_part(tmp_path):
    junk = small_zip(tmp_path / "junk.zip", {VGG: b"junk", NONLOCAL: b"junk", COLORNET: b"junk"})
    models = tmp_path / "models"
    with pytest.raises(WeightsError, match=rf"{re.escape(junk.as_uri())} is not a DEVC checkpoint: {VGG} in .* "
                                           r"is not a PyTorch checkpoint .*The download was deleted; check the URL\."):
        download(junk.as_uri(), models, progress=False)
    assert list(models.iterdir()) == []


def test_download_into_an_unwritable_folder_names_it(official, tmp_path):
    # Under a regular file nothing can be created, even by root.
    (tmp_path / "a-file").write_text("")
    models = tmp_path / "a-file" / "models"
    with pytest.raises(WeightsError, match=rf"cannot write to the model folder {re.escape(str(models))} "
                                           r"\(Not a directory\)\. "
                                           r"Set VSEXCOLOR_MODEL_DIR to a folder you can write to"):
        download(official.zip.as_uri(), models, progress=False)


def test_download_from_a_file_url_continues_a_partial_part(official, tmp_path):
    whole = official.zip.read_bytes()
    (tmp_path / f"{ZIP_NAME}.part").write_bytes(whole[:len(whole) // 3])
    final = download(official.zip.as_uri(), tmp_path, progress=False)
    assert final.read_bytes() == whole
    assert not (tmp_path / f"{ZIP_NAME}.part").exists()


class _Handler(BaseHTTPRequestHandler):
    """Serves the server's ``data`` at ``/colorization_checkpoint.zip``, honouring ``Range: bytes=N-``
    if the server's ``ranges`` is set and dropping the connection after ``cut_at`` bytes if set."""

    server: _Server

    def do_GET(self) -> None:
        asked = self.headers.get("Range")
        self.server.asked.append(asked)
        if self.path != f"/{ZIP_NAME}":
            self.send_error(404)
            return
        data, start = self.server.data, 0
        if asked and self.server.ranges:
            start = int(asked.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(memoryview(data)[start:self.server.cut_at or len(data)])

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    data: bytes
    ranges: bool = True
    cut_at: int | None = None
    asked: list[str | None]


@pytest.fixture
def server(official, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.data, httpd.asked = official.zip.read_bytes(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url_of(server: _Server, name: str = ZIP_NAME) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def test_an_interrupted_http_download_resumes_with_a_range_request(server, tmp_path):
    server.cut_at = len(server.data) // 2
    with pytest.raises(WeightsError, match=rf"run `vsexcolor download` again: it resumes from "
                                           rf"{re.escape(str(tmp_path / ZIP_NAME))}\.part"):
        download(url_of(server), tmp_path, progress=False)
    assert not (tmp_path / ZIP_NAME).exists()
    assert (tmp_path / f"{ZIP_NAME}.part").stat().st_size == server.cut_at
    server.cut_at = None
    final = download(url_of(server), tmp_path, progress=False)
    assert server.asked == [None, f"bytes={len(server.data) // 2}-"]
    assert final.read_bytes() == server.data
    assert not (tmp_path / f"{ZIP_NAME}.part").exists()


def test_a_server_that_ignores_ranges_restarts_the_part(server, tmp_path):
    server.ranges = False
    (tmp_path / f"{ZIP_NAME}.part").write_bytes(b"bytes that are not the start of the zip")
    final = download(url_of(server), tmp_path, progress=False)
    assert final.read_bytes() == server.data


def test_a_part_that_is_already_complete_is_checked_and_kept(server, tmp_path):
    (tmp_path / f"{ZIP_NAME}.part").write_bytes(server.data)
    final = download(url_of(server), tmp_path, progress=False)
    assert server.asked == [f"bytes={len(server.data)}-"]
    assert final.read_bytes() == server.data


def test_an_http_error_is_named_and_leaves_nothing(server, tmp_path):
    with pytest.raises(WeightsError, match=rf"cannot download {re.escape(url_of(server, 'missing.zip'))} "
                                           r"\(HTTP 404 Not Found\)\. Check the address and the connection, "
                                           r"then run `vsexcolor download` again\.$"):
        download(url_of(server, "missing.zip"), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


# --- the commands -----------------------------------------------------------------------------

def test_download_command_saves_the_zip_and_prints_its_path(official, tmp_path):
    models = tmp_path / "models"
    done = vsexcolor("download", "--url", official.zip.as_uri(), "--dir", str(models), model_dir=tmp_path / "unused")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{models / ZIP_NAME}\n"
    assert filecmp.cmp(models / ZIP_NAME, official.zip, shallow=False)


def test_download_command_reports_an_unwritable_folder_in_one_line(official, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "a-file" / "models"))
    assert main(["download", "--url", official.zip.as_uri()]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(r"vsexcolor download: cannot write to the model folder .*a-file/models .*\n", err)


def test_info_exits_0_and_reports_valid_weights(official, tmp_path):
    os.link(official.zip, tmp_path / ZIP_NAME)
    done = vsexcolor("info", model_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"weights looked for in: {tmp_path} (from $VSEXCOLOR_MODEL_DIR)\n" in done.stdout
    assert f"weights found:         {tmp_path / ZIP_NAME}\n" in done.stdout
    assert f"  uses:                {NONLOCAL}\n" in done.stdout
    assert "weights valid:         yes\n" in done.stdout
    assert f"torch:                 {torch.__version__}\n" in done.stdout
    assert re.search(r"^VapourSynth: +R\d+", done.stdout, re.M)
    assert re.search(r"^device: +(cpu|cuda:0 \(.+\))$", done.stdout, re.M)


def test_info_exits_1_without_weights_and_says_what_to_do(tmp_path, capsys):
    assert main(["info", "--weights", str(tmp_path / "gone")]) == 1
    out = capsys.readouterr().out
    assert f"weights looked for in: {tmp_path / 'gone'} (given)\n" in out
    assert "weights found:         no\n" in out
    assert re.search(r"^weights valid: +no: no DEVC weights at .*Run `vsexcolor download`", out, re.M)
