"""The app as a new user meets it: ``python app.py`` in a subprocess, driven by Chromium (Playwright).

Two servers start side by side: one whose offline Hub cache holds (synthetic) official weights,
one with an empty cache (untrained fallback). Needs ``/usr/bin/chromium`` (Debian package
``chromium``); without it the tests fail, they do not skip.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from appfiles import SMALL_HUB_DESCRIPTION, make_bad_images, make_hub_home
from playwright.sync_api import expect, sync_playwright

from app.examples import write_examples

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/uniformer_app_screenshot.png")
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _app_server(hf_home: Path, log: Path):
    """Run ``python app.py`` offline with ``hf_home`` as HF_HOME; yields its URL once it answers.
    The process is always terminated."""
    port = _free_port()
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    env.pop("UNIFORMER_CHECKPOINT_DIR", None)
    env.pop("HF_HUB_CACHE", None)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"app.py did not answer at {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """{'hub': url, 'untrained': url}: two app servers started in parallel."""
    tmp = tmp_path_factory.mktemp("e2e")
    homes = {"hub": make_hub_home(tmp / "hf_home_hub"), "untrained": tmp / "hf_home_empty"}
    with ExitStack() as stack:
        started = {kind: (*stack.enter_context(_app_server(home, tmp / f"{kind}.log")), tmp / f"{kind}.log")
                   for kind, home in homes.items()}
        for process, url, log in started.values():
            _wait_until_up(process, url, log)
        yield {kind: url for kind, (_, url, _) in started.items()}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _classify(page, path: Path) -> None:
    """Replace the image with ``path`` (waiting for the upload to finish) and click Classify."""
    remove = page.locator("#input-image button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.locator(f"#input-image img[src*='{path.name}']").wait_for(state="attached")
    page.click("#classify")


def _wait_for_top5(page) -> None:
    page.locator("#details").get_by_text("Inference:").wait_for()
    assert page.locator("#top-classes [data-testid$='-confidence-set']").count() == 5


def test_classify_a_photo_then_a_broken_file_then_a_photo(servers, page, tmp_path):
    examples = write_examples()
    bad = make_bad_images(tmp_path, examples["chelsea"])
    page.goto(servers["hub"])
    page.locator("#weights").get_by_text(SMALL_HUB_DESCRIPTION).wait_for()

    _classify(page, examples["chelsea"])
    _wait_for_top5(page)
    details = page.locator("#details").inner_text()
    assert SMALL_HUB_DESCRIPTION in details and "Device:" in details and " ms " in details
    assert not page.locator("#weights-banner").inner_text().strip()  # no warning with trained weights
    page.screenshot(path=str(tmp_path / "classified.png"), full_page=True)
    shutil.copyfile(tmp_path / "classified.png", SCREENSHOT)

    _classify(page, bad["text"])
    toast = page.get_by_text("This file cannot be used as an image: notes.jpg is not an image file")
    expect(toast).to_be_visible()
    page.wait_for_timeout(500)  # the toast flies in
    page.screenshot(path=str(tmp_path / "broken_file.png"), full_page=True)

    _classify(page, examples["coffee"])
    _wait_for_top5(page)


def test_untrained_fallback_warning_is_visible(servers, page):
    page.goto(servers["untrained"])
    warning = page.locator("#weights-banner").get_by_text("untrained random weights: its predictions are meaningless")
    warning.wait_for()
    assert warning.is_visible()
    assert "UNIFORMER_CHECKPOINT_DIR" in page.locator("#weights-banner").inner_text()
    page.screenshot(path=str(SCREENSHOT.with_name("uniformer_app_screenshot_untrained.png")), full_page=True)
