"""The app as a new user meets it: ``python app.py`` in a subprocess, driven by Chromium (Playwright).

Two servers (the shared ones of conftest.py): one whose offline Hub cache holds (synthetic) official
weights, one with an empty cache (untrained fallback). Needs ``/usr/bin/chromium`` (Debian package
``chromium``); without it the tests fail, they do not skip.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from appfiles import SMALL_HUB_DESCRIPTION, browser_page, make_bad_images
from playwright.sync_api import expect

from app.examples import write_examples

SCREENSHOT = Path("/tmp/uniformer_app_screenshot.png")


@pytest.fixture(scope="module")
def servers(app_url, app_url_untrained):
    """{'hub': url, 'untrained': url}: the shared app servers (conftest.py) with the official-format
    Hub cache and with an empty one."""
    return {"hub": app_url, "untrained": app_url_untrained}


@pytest.fixture
def page(browser):
    with browser_page(browser, width=1280, height=1000, timeout_ms=30_000) as p:
        yield p


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
    assert "Download official weights" in page.locator("#weights-banner").inner_text()  # what a visitor can do
    assert "UNIFORMER_CHECKPOINT_DIR" in page.locator("#weights-banner").inner_html()  # the operator's, collapsed
    page.screenshot(path=str(SCREENSHOT.with_name("uniformer_app_screenshot_untrained.png")), full_page=True)
