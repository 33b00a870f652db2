"""The review page in a real browser (Debian's headless chromium, driven by Selenium through
chromium-driver; scripts/setup.sh installs both and nothing is downloaded): a restorer
exports a film's shots, replaces one keyframe by upload, re-picks another, approves them
all, and `colorize --refs DIR` then renders exactly those keyframes.

With VSEXCOLOR_SCREENSHOTS=FOLDER the run's screenshots of the grid and of a shot are kept
there (docs/review-grid.png and docs/review-shot.png were made so)."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

import ddcnets
import vsexcolor
from clips import decode_rgb, sample_clip_path
from media import write_video
from vsexcolor import commands, open_clip, probe
from vsexcolor.commands.review import open_review
from vsexcolor.filter import PROP_KEYFRAME, PROP_REFERENCE
from vsexcolor.review.app import create_app

W, H = 192, 128
TOKEN = "browser-token"


@pytest.fixture
def export(tmp_path, monkeypatch) -> tuple[Path, np.ndarray]:
    """A film of three shots exported with --colorize (a DDColor-T of deterministic weights
    as the keyframe model), and the film in colour."""
    colour = np.concatenate([decode_rgb(sample_clip_path("bikes"), 14, (W, H)),
                             decode_rgb(sample_clip_path("carphone_pristine"), 9, (W, H)),
                             decode_rgb(sample_clip_path("bigbuckbunny"), 12, (W, H))])
    gray = np.stack([np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[..., :1], 3, -1) for f in colour])
    film = write_video(tmp_path / "film.mkv", gray, pix_fmt="gray", codec="ffv1")
    models = tmp_path / "models"
    models.mkdir()
    ddcnets.save_checkpoint(models / "ddcolor_paper_tiny.pth", "tiny", seed=7, wrapped=True)
    monkeypatch.setenv("VSEXCOLOR_MODEL_DIR", str(models))
    assert commands.main(["shots", str(film), "-o", str(tmp_path / "shots"), "--colorize", "--device", "cpu"]) == 0
    return tmp_path / "shots", colour


@pytest.fixture
def served(export):
    """The page of the export, served here as `vsexcolor review` serves it: its address."""
    folder, _ = export
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(create_app(open_review(folder, device="cpu"), TOKEN), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/?token={TOKEN}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def browser(tmp_path_factory):
    from selenium import webdriver

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the browser test needs Debian's chromium and chromium-driver: run scripts/setup.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    # Chromium makes its scratch folders under $TMPDIR: the test's own, so it leaves none in /tmp.
    scratch = {**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("chromium"))}
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver, env=scratch))
    yield browser
    browser.quit()


def test_a_restorer_replaces_one_keyframe_re_picks_another_approves_all_and_renders_them(export, served, browser,
                                                                                       tmp_path, capsys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    folder, colour = export
    a, b, c = [row["frame"] for row in json.loads((folder / "shots.json").read_text())["shots"]]
    assert b == 14  # the second shot's first frame: the one re-picked is 4 frames on
    automatic = {n: (folder / f"{n:06d}.png").read_bytes() for n in (a, b, c)}
    wait = WebDriverWait(browser, 60)

    def shown(css: str):
        return wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, css)))

    browser.get(served)
    shown(f'.card[data-number="3"] img[alt="colour {c}"]')
    assert browser.find_element(By.ID, "unapproved").text == "3 shots not yet approved"
    assert browser.find_element(By.ID, "command").text.startswith("vsexcolor colorize ")
    screenshot(browser, tmp_path, "review-grid.png")

    # Shot 1: its keyframe replaced by a hand-coloured picture, dropped on it.
    mine = tmp_path / "by-hand.png"
    ycc = cv2.cvtColor(colour[a], cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.imread(str(folder / "gray" / f"{a:06d}.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(mine), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
    browser.find_element(By.CSS_SELECTOR, '.card[data-number="1"]').send_keys(Keys.ENTER)
    drop(browser, shown(f'.keyframe[data-frame="{a}"] .drop'), mine)
    wait.until(lambda b: "replaced by hand" in b.find_element(By.ID, "shot-state").text)
    wait.until(lambda b: b.find_element(By.ID, "preview-note").text == "the shot's first frames, looping")
    screenshot(browser, tmp_path, "review-shot.png")

    # Shot 2: frame 18 instead of its automatic 14, picked with the scrubber.
    browser.find_element(By.ID, "back").click()
    browser.find_element(By.CSS_SELECTOR, '.card[data-number="2"]').click()
    browser.find_element(By.CSS_SELECTOR, '.card[data-number="2"]').send_keys(Keys.ENTER)
    scrubber = shown("#scrubber")
    wait.until(lambda b: b.find_element(By.ID, "scrub-frame").text == "frame 14")
    scrubber.send_keys(*[Keys.ARROW_RIGHT] * 4)
    assert browser.find_element(By.ID, "scrub-frame").text == "frame 18"
    browser.find_element(By.CSS_SELECTOR, '.keyframe[data-frame="14"] button.repick').click()
    shown('.keyframe[data-frame="18"] img[alt="keyframe 18"]')

    # Every shot approved from the grid, with the keys.
    browser.find_element(By.ID, "back").click()
    shown('.card[data-number="1"]').click()
    for left in (2, 1, 0):
        ActionChains(browser).send_keys("a").perform()
        wait.until(lambda b: b.find_element(By.ID, "unapproved").text.startswith(f"{left} shot"))
        ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    assert browser.find_element(By.ID, "unapproved").text == "0 shots not yet approved"

    # The folder: what the page showed, the pictures it replaced in history/.
    rows = json.loads((folder / "shots.json").read_text())["shots"]
    assert [(r.get("state", "automatic"), r.get("approved")) for r in rows] == [
        ("replaced", True), ("re-picked", True), ("automatic", True)]
    assert (folder / f"{a:06d}.png").read_bytes() == mine.read_bytes()
    assert not (folder / "000014.png").exists() and (folder / "000018.png").exists()
    kept = sorted((folder / "history").iterdir())
    assert [(p.name[:7], p.read_bytes()) for p in kept] == [(f"{a:06d}.", automatic[a]), ("000014.", automatic[b])]
    assert (folder / f"{c:06d}.png").read_bytes() == automatic[c]
    # colorize --refs DIR renders exactly those keyframes, each over its whole shot.
    capsys.readouterr()
    assert commands.main(["colorize", str(folder.parent / "film.mkv"), "--refs", str(folder), "-o",
                          str(tmp_path / "out.mkv"), "--backend", "propagate", "--size", "96x64",
                          "--codec", "ffv1"]) == 0
    err = capsys.readouterr().err
    assert [line.strip() for line in err.splitlines() if line.startswith("  ") and line.strip()] == [
        f"{n:06d}.png: frame {n}, keyframe (lightness {db} dB against frame {n})"
        for n, db in zip((a, 18, c), re.findall(r"keyframe \(lightness ([\d.]+) dB", err))]
    assert "no reference of their own" not in err and (tmp_path / "out.mkv").exists()
    clip = open_clip(probe(folder.parent / "film.mkv", progress=False))
    out = vsexcolor.colorize(clip, folder, backend="propagate", pixels=96 * 64, keyframe_model="none")
    assert [(f.props[PROP_KEYFRAME], f.props[PROP_REFERENCE]) for f in out.frames()] == (
        [(a, 0)] * 14 + [(18, 1)] * 9 + [(c, 2)] * 12)


def drop(browser, target, picture: Path) -> None:
    """Drop the file ``picture`` on ``target``, as a file manager's drag and drop does."""
    browser.execute_script("""
        const [target, name, data] = arguments;
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const files = new DataTransfer();
        files.items.add(new File([bytes], name, {type: "image/png"}));
        target.dispatchEvent(new DragEvent("dragover", {dataTransfer: files, bubbles: true, cancelable: true}));
        target.dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
    """, target, picture.name, base64.b64encode(picture.read_bytes()).decode())


def screenshot(browser, tmp_path: Path, name: str) -> None:
    browser.save_screenshot(str(tmp_path / name))
    if keep := os.environ.get("VSEXCOLOR_SCREENSHOTS"):
        shutil.copy(tmp_path / name, Path(keep) / name)
