"""The DDColor checkpoints that colour keyframes: finding, loading, checking and downloading them.

No real weights: a ConvNeXt-T DDColor's state dict filled with random numbers, saved as the
authors save it (``{"params": ...}``) and bare; a ConvNeXt-L one is faked with the right keys
and shapes but one number per tensor, so that its file stays small.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from media import declare_size
from vsexcolor.commands import main
from vsexcolor.weights.ddcolor import (KEYFRAME_MODELS, KeyframeModelError, describe, download_keyframe_model,
                                        find_keyframe_model, fingerprint, load_keyframe_model)
from vsexcolor.models import DDColor
from vsexcolor.weights.devc import WeightsError

NAMES = ["ddcolor_modelscope", "ddcolor_artistic", "ddcolor_paper", "ddcolor_paper_tiny"]
WAYS_OUT = "Pass a reference (`--ref`/`--refs` on the command line, `ref=` in colorize) or run "
OTHER_FILE_HINT = "Pass the path of a valid DDColor checkpoint, or one of ddcolor_modelscope, "


@dataclass(frozen=True)
class Checkpoints:
    state: dict[str, torch.Tensor]  # a ConvNeXt-T DDColor's state dict, random values
    params: Path  # torch.save({"params": state}), as the authors' training code saves
    bare: Path  # torch.save(state)
    large: Path  # the keys and shapes of a ConvNeXt-L DDColor, one number per tensor


@pytest.fixture(autouse=True)
def _free_disk(tmp_path: Path) -> Iterator[None]:
    # A download here writes 220 MB, and pytest keeps the temporary folders of 3 sessions.
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkpoints]:
    root = tmp_path_factory.mktemp("ddcolor")
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.rand(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in DDColor("tiny").state_dict().items()}
    torch.save({"params": state}, root / "params.pth")
    torch.save(state, root / "bare.pth")
    with torch.device("meta"):
        large = {k: (v.shape, v.dtype) for k, v in DDColor("large").state_dict().items()}
    # A broadcast view is saved with its one-number storage: a few hundred KB, not 900 MB.
    torch.save({k: torch.zeros((), dtype=dtype).expand(shape) for k, (shape, dtype) in large.items()},
               root / "large.pth")
    yield Checkpoints(state, root / "params.pth", root / "bare.pth", root / "large.pth")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model folder, named by $VSEXCOLOR_MODEL_DIR."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(folder))
    return folder


def put(folder: Path, name: str, content: Path | bytes | dict) -> Path:
    """``folder/name.pth``: a hard link to a file, these bytes, or this dict saved."""
    path = folder / f"{name}.pth"
    if isinstance(content, Path):
        os.link(content, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


def assert_holds(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = net.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not net.training


# --- the released models ----------------------------------------------------------------------

def test_the_released_models_in_order_of_preference_with_their_encoders_and_addresses():
    assert [(m.name, m.encoder, m.file_name) for m in KEYFRAME_MODELS] == [
        ("ddcolor_modelscope", "large", "ddcolor_modelscope.pth"),
        ("ddcolor_artistic", "large", "ddcolor_artistic.pth"),
        ("ddcolor_paper", "large", "ddcolor_paper.pth"),
        ("ddcolor_paper_tiny", "tiny", "ddcolor_paper_tiny.pth")]
    assert [m.url for m in KEYFRAME_MODELS] == [
        f"https://huggingface.co/piddnad/DDColor-models/resolve/main/{name}.pth" for name in NAMES]


# --- finding ----------------------------------------------------------------------------------

def test_without_a_choice_the_most_preferred_model_in_the_model_folder_is_used(models):
    (models / "ddcolor_modelscope.pth.part").write_bytes(b"")  # an unfinished download is no model
    # Finding goes by file names; loading checks the content.
    for name in reversed(NAMES):
        put(models, name, b"")
        assert find_keyframe_model() == models / f"{name}.pth"


def test_a_name_is_looked_for_in_the_model_folder_whatever_else_is_there(models):
    for name in NAMES:
        put(models, name, b"")
    for name in NAMES:
        assert find_keyframe_model(name) == models / f"{name}.pth"


def test_a_path_is_used_as_given_and_a_folder_is_searched_like_the_model_folder(models, tmp_path):
    put(models, "ddcolor_modelscope", b"")
    mine = put(tmp_path, "mine", b"")
    assert find_keyframe_model(mine) == mine
    assert find_keyframe_model(str(mine)) == mine
    other = tmp_path / "other"
    other.mkdir()
    put(other, "ddcolor_paper_tiny", b"")
    put(other, "ddcolor_paper", b"")
    assert find_keyframe_model(other) == other / "ddcolor_paper.pth"


def test_without_a_model_the_error_names_the_folder_and_both_ways_out(models):
    expected = (rf"^no DDColor keyframe model in {re.escape(str(models))}: it holds none of "
                r"ddcolor_modelscope\.pth, ddcolor_artistic\.pth, ddcolor_paper\.pth, ddcolor_paper_tiny\.pth\. "
                rf"{re.escape(WAYS_OUT)}`vsexcolor download ddcolor`\.$")
    with pytest.raises(KeyframeModelError, match=expected) as caught:
        find_keyframe_model()
    assert isinstance(caught.value, WeightsError)
    with pytest.raises(KeyframeModelError, match=expected):
        load_keyframe_model()


def test_a_missing_named_model_says_how_to_download_it(models):
    put(models, "ddcolor_modelscope", b"")
    with pytest.raises(KeyframeModelError, match=rf"^no ddcolor_artistic\.pth in the model folder "
                                                 rf"{re.escape(str(models))}\. {re.escape(WAYS_OUT)}"
                                                 r"`vsexcolor download ddcolor --model ddcolor_artistic`\.$"):
        find_keyframe_model("ddcolor_artistic")


def test_a_path_that_is_not_there_is_named(models, tmp_path):
    with pytest.raises(KeyframeModelError, match=rf"^no keyframe model at {re.escape(str(tmp_path / 'gone.pth'))}: "
                                                 r"it is neither a file nor one of ddcolor_modelscope, .*\. "
                                                 rf"{re.escape(WAYS_OUT)}"):
        find_keyframe_model(tmp_path / "gone.pth")


# --- loading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["params", "bare"])
def test_a_checkpoint_loads_strictly_saved_as_params_or_bare(checkpoints, tmp_path, layout):
    path = put(tmp_path, "mine", getattr(checkpoints, layout))
    net = load_keyframe_model(path)
    assert isinstance(net, DDColor)
    assert_holds(net, checkpoints.state)


def test_the_model_in_the_model_folder_loads_and_is_described(models, checkpoints):
    path = put(models, "ddcolor_paper_tiny", checkpoints.params)
    assert_holds(load_keyframe_model(), checkpoints.state)
    report = describe()
    assert (report.looked_in, report.present, report.chosen, report.encoder) == (
        models, ("ddcolor_paper_tiny",), path, "tiny")
    assert report.valid and report.error is None


def test_another_file_gets_the_encoder_its_shapes_fit(models, checkpoints):
    assert describe(checkpoints.params).encoder == "tiny"
    report = describe(checkpoints.large)
    assert (report.chosen, report.encoder, report.valid) == (checkpoints.large, "large", True)


def test_a_released_model_s_file_name_fixes_its_encoder(models, checkpoints):
    large_named = put(models, "ddcolor_modelscope", checkpoints.params)
    with pytest.raises(KeyframeModelError, match=rf"^{re.escape(str(large_named))} does not fit DDColor with "
                                                 r"ConvNeXt-L: missing keys .*; wrong shapes: "
                                                 r"encoder\.arch\.downsample_layers\.0\.0\.weight \[96, 3, 4, 4\] "
                                                 r"\(expected \[192, 3, 4, 4\]\)"):
        load_keyframe_model()
    tiny_named = put(models, "ddcolor_paper_tiny", checkpoints.large)
    report = describe("ddcolor_paper_tiny")
    assert report.encoder is None
    assert report.error.startswith(f"{tiny_named} does not fit DDColor with ConvNeXt-T: unexpected keys ")


def test_a_wrong_key_is_named_in_one_line_with_what_to_do(models, checkpoints):
    state = dict(checkpoints.state)
    state["refine_net.0.0.offset"] = state.pop("refine_net.0.0.bias")
    path = put(models, "ddcolor_paper_tiny", {"params": state})
    with pytest.raises(KeyframeModelError) as caught:
        load_keyframe_model()
    assert str(caught.value) == (
        f"{path} does not fit DDColor with ConvNeXt-T: missing keys refine_net.0.0.bias; unexpected keys "
        f"refine_net.0.0.offset. Run `vsexcolor download ddcolor --model ddcolor_paper_tiny` to fetch it "
        f"again (it replaces a damaged file).")


def test_a_damaged_file_is_named(checkpoints, tmp_path):
    path = put(tmp_path, "mine", checkpoints.params.read_bytes()[:1 << 20])
    with pytest.raises(KeyframeModelError, match=rf"^{re.escape(str(path))} is not a PyTorch checkpoint \(.+\)\. "
                                                 rf"{OTHER_FILE_HINT}"):
        load_keyframe_model(path)


def test_a_file_whose_records_declare_more_than_the_cap_is_refused_before_torch_reads_them(models, monkeypatch):
    # torch.save writes a zip, and torch reads each record whole at the size it declares.
    monkeypatch.setattr("vsexcolor.weights.checkpoints.MAX_CHECKPOINT_BYTES", 1 << 20)  # standing in for 2 GiB
    path = put(models, "ddcolor_paper_tiny", {"weight": torch.zeros(1000)})
    with zipfile.ZipFile(path) as archive:
        (record,) = [name for name in archive.namelist() if name.endswith("/data/0")]
    declare_size(path, record, 2 << 20)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("loaded"))
    with pytest.raises(KeyframeModelError) as raised:
        load_keyframe_model()
    assert str(raised.value) == (
        f"{path} comes to more than 1 MiB unpacked, more than any checkpoint: it is damaged, or not a checkpoint. "
        f"Run `vsexcolor download ddcolor --model ddcolor_paper_tiny` to fetch it again (it replaces a damaged file).")


@pytest.mark.parametrize("content", [[torch.zeros(3)], {"params": {"weight": 1.0}}], ids=["list", "params-of-floats"])
def test_a_file_that_is_not_a_state_dict_is_named(tmp_path, content):
    path = tmp_path / "mine.pth"
    torch.save(content, path)
    with pytest.raises(KeyframeModelError, match=rf"^{re.escape(str(path))} is not a state dict"):
        load_keyframe_model(path)


def test_a_checkpoint_is_read_once_while_it_stays_the_same(checkpoints, tmp_path, monkeypatch):
    path = tmp_path / "mine.pth"
    shutil.copy(checkpoints.bare, path)
    reads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args) or load(*args, **kwargs))
    first = load_keyframe_model(path)
    with torch.no_grad():
        first.refine_net[0][0].bias.add_(1)  # each network owns its weights: the next load is as read
    assert_holds(load_keyframe_model(path), checkpoints.state)
    fingerprint(path)
    assert len(reads) == 1
    os.utime(path, ns=(0, 0))  # as if written again
    load_keyframe_model(path)
    assert len(reads) == 2


def test_the_fingerprint_is_the_sha256_of_the_file_which_it_does_not_load(models, checkpoints, monkeypatch):
    put(models, "ddcolor_paper_tiny", checkpoints.params)
    monkeypatch.setattr(torch, "load", None)
    assert fingerprint() == hashlib.sha256(checkpoints.params.read_bytes()).hexdigest()
    assert fingerprint(checkpoints.bare) == hashlib.sha256(checkpoints.bare.read_bytes()).hexdigest()
    with pytest.raises(KeyframeModelError, match=r"^no ddcolor_artistic\.pth in the model folder"):
        fingerprint("ddcolor_artistic")


# --- downloading ------------------------------------------------------------------------------

def test_download_from_a_file_url_keeps_only_the_checked_file(checkpoints, tmp_path, capsys):
    final = download_keyframe_model("ddcolor_paper_tiny", checkpoints.params.as_uri(), tmp_path / "models")
    assert final == tmp_path / "models" / "ddcolor_paper_tiny.pth"
    assert filecmp.cmp(final, checkpoints.params, shallow=False)
    assert os.listdir(final.parent) == [final.name]
    assert f"saved {final}" in capsys.readouterr().err
    assert_holds(load_keyframe_model(final), checkpoints.state)


def test_download_fetches_modelscope_into_the_model_folder_by_default(models, checkpoints):
    final = download_keyframe_model(url=checkpoints.large.as_uri(), progress=False)
    assert final == models / "ddcolor_modelscope.pth"
    assert filecmp.cmp(final, checkpoints.large, shallow=False)


@pytest.mark.parametrize("source", ["params", "junk"])
def test_a_download_that_does_not_load_into_the_model_leaves_neither_file(checkpoints, tmp_path, source):
    url = (checkpoints.params if source == "params" else put(tmp_path, "junk", b"not a checkpoint")).as_uri()
    part = tmp_path / "models" / "ddcolor_modelscope.pth.part"
    reason = (r"does not fit DDColor with ConvNeXt-L: missing keys " if source == "params"
              else r"is not a PyTorch checkpoint ")
    with pytest.raises(WeightsError, match=rf"^{re.escape(url)} is not ddcolor_modelscope \(DDColor with "
                                           rf"ConvNeXt-L\): {re.escape(str(part))} {reason}.*\. "
                                           r"The download was deleted; check the URL\.$"):
        download_keyframe_model("ddcolor_modelscope", url, part.parent, progress=False)
    assert list(part.parent.iterdir()) == []


def test_an_interrupted_download_continues_its_part(checkpoints, tmp_path):
    whole = checkpoints.params.read_bytes()
    third = len(whole) // 3
    part = tmp_path / "ddcolor_paper_tiny.pth.part"
    part.write_bytes(whole[:third])
    # The source's first third is zeros: only a download that keeps the part's bytes loads.
    source = put(tmp_path, "source", bytes(third) + whole[third:])
    final = download_keyframe_model("ddcolor_paper_tiny", source.as_uri(), tmp_path, progress=False)
    assert final.read_bytes() == whole
    assert not part.exists()


def test_a_model_already_there_is_not_downloaded_again(checkpoints, models, tmp_path, capsys):
    final = put(models, "ddcolor_paper_tiny", checkpoints.params)
    # The URL would fail: it must not be used.
    assert download_keyframe_model("ddcolor_paper_tiny", (tmp_path / "nowhere.pth").as_uri()) == final
    assert final.stat().st_ino == checkpoints.params.stat().st_ino
    assert f"valid weights are already at {final}; nothing to download" in capsys.readouterr().err


def test_an_unknown_model_is_refused_with_the_names(tmp_path):
    with pytest.raises(KeyframeModelError, match=r"^'ddcolor' is not a released DDColor model; choose one of "
                                                 r"ddcolor_modelscope, ddcolor_artistic, ddcolor_paper, "
                                                 r"ddcolor_paper_tiny\.$"):
        download_keyframe_model("ddcolor", dest_dir=tmp_path)


# --- the commands -----------------------------------------------------------------------------

def test_download_ddcolor_command_saves_the_model_and_prints_its_path(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(tmp_path / "unused"))
    models = tmp_path / "models"
    assert main(["download", "ddcolor", "--model", "ddcolor_paper_tiny", "--url", checkpoints.params.as_uri(),
                 "--dir", str(models)]) == 0
    assert capsys.readouterr().out == f"{models / 'ddcolor_paper_tiny.pth'}\n"
    assert filecmp.cmp(models / "ddcolor_paper_tiny.pth", checkpoints.params, shallow=False)
    assert not (tmp_path / "unused").exists()


def test_download_ddcolor_command_refuses_another_model_in_one_line(checkpoints, tmp_path, capsys):
    assert main(["download", "ddcolor", "--url", checkpoints.params.as_uri(), "--dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    # Above the error: the progress bar.
    assert re.fullmatch(r"vsexcolor download: file://\S+ is not ddcolor_modelscope \(DDColor with ConvNeXt-L\): "
                        r".*check the URL\.", err.splitlines()[-1])
    assert err.endswith("\n")


def test_download_command_keeps_model_choices_to_ddcolor(capsys):
    assert main(["download", "--model", "ddcolor_paper_tiny"]) == 2
    assert capsys.readouterr().err == ("vsexcolor download: --model chooses a DDColor model: "
                                       "use `vsexcolor download ddcolor --model NAME`.\n")


def test_download_help_explains_both_downloads(capsys):
    with pytest.raises(SystemExit) as done:
        main(["download", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "{devc,ddcolor}" in text
    assert "`vsexcolor download` fetches the DEVC checkpoint" in text
    assert "`vsexcolor download ddcolor` fetches a DDColor model (default ddcolor_modelscope)" in text


def test_info_lists_the_keyframe_models_and_whether_the_one_used_loads(devc_weights, models, checkpoints, capsys):
    for folder in ("data", "checkpoints"):
        (models / folder).symlink_to(devc_weights / folder)
    put(models, "ddcolor_paper_tiny", checkpoints.params)
    artistic = put(models, "ddcolor_artistic", b"not a checkpoint")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^keyframe models in: +{re.escape(str(models))}: ddcolor_artistic, ddcolor_paper_tiny$",
                     out, re.M)
    assert re.search(rf"^keyframe model used: +{re.escape(str(artistic))}$", out, re.M)
    assert re.search(rf"^keyframe model valid: +no: {re.escape(str(artistic))} is not a PyTorch checkpoint .*"
                     r"Run `vsexcolor download ddcolor --model ddcolor_artistic`", out, re.M)
    artistic.unlink()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^keyframe models in: +{re.escape(str(models))}: ddcolor_paper_tiny$", out, re.M)
    assert re.search(rf"^keyframe model used: +{re.escape(str(models / 'ddcolor_paper_tiny.pth'))} "
                     r"\(DDColor with ConvNeXt-T\)$", out, re.M)
    assert re.search(r"^keyframe model valid: +yes$", out, re.M)


def test_info_exit_code_is_the_devc_weights_alone(models, checkpoints, capsys):
    put(models, "ddcolor_paper_tiny", checkpoints.params)
    assert main(["info"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^weights valid: +no: ", out, re.M)
    assert re.search(r"^keyframe model valid: +yes$", out, re.M)
