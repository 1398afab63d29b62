"""The Explain tab as a user meets it: ``python app.py`` in a subprocess, driven by Chromium (Playwright).

Upload a photo, click a point of it, get the heat maps back; move the head slider; click outside
the crop. The server's offline Hub cache holds (synthetic) official UniFormer-S weights. Needs
``/usr/bin/chromium`` (Debian package ``chromium``); without it the test fails, it does not skip.
A full-page screenshot is saved to /tmp/uniformer_explain_screenshot.png.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from appfiles import browser_page
from playwright.sync_api import expect

from app.examples import write_examples

SCREENSHOT = Path("/tmp/uniformer_explain_screenshot.png")
TIMEOUT_MS = 120_000  # the first click runs the captured forward on a (possibly busy) CPU


@pytest.fixture(scope="module")
def server(app_url):
    """URL of the shared ``python app.py`` with synthetic official weights (conftest.app_url)."""
    return app_url


@pytest.fixture(scope="module")
def page(browser):
    with browser_page(browser, timeout_ms=TIMEOUT_MS) as p:
        yield p


def _click_canvas(page, fx: float, fy: float) -> None:
    """Click the Explain picture at fractions (fx, fy) of the picture. Gradio draws it inside the
    <img> box at min(box / natural size, 1) scale, centred (the rule its click handler inverts)."""
    img = page.locator("#explain-canvas img")
    box = img.bounding_box()
    natural_w, natural_h = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    scale = min(box["width"] / natural_w, box["height"] / natural_h, 1)
    left, top = (box["width"] - natural_w * scale) / 2, (box["height"] - natural_h * scale) / 2
    img.click(position={"x": left + natural_w * scale * fx, "y": top + natural_h * scale * fy})


def test_click_a_point_and_get_heat_maps_back(server, page):
    photo = write_examples()["chelsea"]
    page.goto(server)
    page.get_by_role("tab", name="Explain").click()
    page.locator("#explain-input input[type=file]").set_input_files(str(photo))
    expect(page.locator("#explain-info")).to_contain_text("Click a point")
    canvas = page.locator("#explain-canvas img")
    canvas.wait_for()
    before = canvas.get_attribute("src")

    _click_canvas(page, 0.62, 0.38)  # the cat's left eye (right in the picture), inside the crop
    info = page.locator("#explain-info")
    expect(info).to_contain_text("token (row, col)")
    expect(info).to_contain_text("stage 3 \u00b7 block 1 (global)")
    expect(page.locator("#explain-lvg img")).to_have_count(3)
    expect(page.locator("#explain-query-plot .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#explain-distance .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#explain-kernels .js-plotly-plot")).to_have_count(1)
    assert canvas.get_attribute("src") != before  # the picture now carries the heat map
    assert page.locator("#explain-erf img").count() == 1

    head = page.locator("#explain-head input[type=number]")
    head.fill("2")
    head.press("Enter")
    expect(info).to_contain_text("head 2 of 5")

    page.locator("#explain-export").click()
    expect(page.locator("#explain-files")).to_contain_text(".png")
    expect(page.locator("#explain-files")).to_contain_text(".json")

    page.get_by_text("Class activation maps (pytorch-grad-cam)").click()  # collapsed until asked for
    page.locator("#explain-cam-run").click()
    expect(page.locator("#explain-cam-caption")).to_contain_text("GradCAM")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    shown = info.inner_text()
    _click_canvas(page, 0.02, 0.5)  # the grey border: outside the centre crop
    expect(page.get_by_text("outside the centre crop the model sees").first).to_be_visible()
    _click_canvas(page, 0.4, 0.6)  # and the app keeps serving
    expect(info).not_to_have_text(shown)
    expect(info).to_contain_text("head 2 of 5")
