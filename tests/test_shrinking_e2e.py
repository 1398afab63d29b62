"""The "Token shrinking" tab as a user meets it: ``python app.py`` in a subprocess, driven by Chromium.

The server's offline Hub cache holds synthetic official weights of uniformer_xxs_160_in1k (the light
checkpoint on the Hub); the XS models have no Hub file, so choosing one shows the untrained warning.
Needs ``/usr/bin/chromium`` (Debian package ``chromium``); without it the test fails, it does not skip.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from appfiles import browser_page, make_bad_images
from playwright.sync_api import expect

from app.examples import write_examples

SCREENSHOT = Path("/tmp/uniformer_shrinking_screenshot.png")
RUN_TIMEOUT_MS = 240_000  # a run traces six keep ratios three times each; slow on a busy shared CPU
LIGHT_HUB = "Andy1621/uniformer_light/uniformer_xxs_160_in1k.pth"


@pytest.fixture(scope="module")
def server(app_url):
    """URL of the shared ``python app.py`` (conftest.app_url) whose offline Hub cache holds the light
    XXS-160 weights."""
    return app_url


@pytest.fixture(scope="module")
def page(browser):
    with browser_page(browser, width=1280) as p:
        yield p


def _overlay_src(page) -> str:
    return page.locator("#shrink-overlay img").get_attribute("src")


def _first_column(table) -> list[str]:
    """The keep-ratio column of the sweep table, top to bottom."""
    return [t.strip() for t in table.locator("[data-testid^='cell-'][data-testid$='-0'] span").all_inner_texts()]


def _run(page, wait_for: str) -> None:
    page.click("#shrink-run")
    page.locator("#shrink-caption").get_by_text(wait_for).wait_for(timeout=RUN_TIMEOUT_MS)


def test_token_shrinking_tab(server, page, tmp_path):
    examples = write_examples()
    page.goto(server)
    page.get_by_role("tab", name="Token shrinking").click()
    page.locator("#shrink-weights").get_by_text(f"official Hub checkpoint {LIGHT_HUB}").wait_for()
    assert not page.locator("#shrink-weights-banner").inner_text().strip()  # trained weights: no warning

    # pick the cat from the tab's example gallery and run
    panel = page.locator("[role=tabpanel]:visible")
    panel.locator("button.gallery-item").first.click()
    page.locator("#shrink-image img[src*='chelsea']").wait_for(state="attached")
    _run(page, "Layer 2 of 10: stage 3, block 2")
    caption = page.locator("#shrink-caption").inner_text()
    assert "50 kept" in caption and "50 fused" in caption and "attention ran on 52 tokens" in caption
    expect(page.locator("#shrink-overlay img")).to_be_visible()
    chart = page.locator("#shrink-chart .js-plotly-plot")
    expect(chart).to_be_visible()
    assert "Tokens per hourglass layer at keep ratio 0.5" in chart.inner_text()
    assert page.locator("#shrink-top-classes [data-testid$='-confidence-set']").count() == 5
    sweep = page.locator("#shrink-sweep")
    assert _first_column(sweep) == ["1", "0.8", "0.6", "0.5 \u25c0", "0.4", "0.25"]
    details = page.locator("#shrink-details").inner_text()
    assert "Keep ratio 0.5" in details and " ms" in details and "Tokens processed" in details

    # move the layer slider: another layer's overlay, from the cached trace
    before = _overlay_src(page)
    page.locator("#shrink-layer input[type=range]").fill("9")
    page.locator("#shrink-caption").get_by_text("Layer 9 of 10: stage 4, block 1").wait_for()
    assert "5\u00d75 = 25 tokens" in page.locator("#shrink-caption").inner_text()
    expect(page.locator("#shrink-overlay img")).not_to_have_attribute("src", before)
    page.locator("#shrink-layer input[type=range]").fill("4")
    page.locator("#shrink-caption").get_by_text("Layer 4 of 10: stage 3, block 4").wait_for()

    # another keep ratio: prediction, latency and overlay of that ratio
    page.get_by_label("0.25", exact=True).check()
    page.locator("#shrink-details").get_by_text("Keep ratio 0.25").wait_for()
    assert "25 kept" in page.locator("#shrink-caption").inner_text()
    expect(sweep).to_contain_text("0.25 \u25c0")
    assert _first_column(sweep) == ["1", "0.8", "0.6", "0.5", "0.4", "0.25 \u25c0"]
    expect(chart).to_contain_text("at keep ratio 0.25")
    page.wait_for_timeout(500)  # let the plot finish its transition
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a broken file: a clear message, and the app keeps serving
    bad = make_bad_images(tmp_path, examples["chelsea"])
    page.locator("#shrink-image button[aria-label='Remove Image']").click()
    page.locator("#shrink-image input[type=file]").set_input_files(str(bad["text"]))
    page.locator("#shrink-image img[src*='notes']").wait_for(state="attached")
    page.click("#shrink-run")
    expect(page.get_by_text("This file cannot be used as an image: notes.jpg is not an image file")).to_be_visible()
    page.wait_for_timeout(500)  # the toast flies in
    page.screenshot(path=str(tmp_path / "broken_file.png"), full_page=True)

    page.locator("#shrink-image button[aria-label='Remove Image']").click()
    page.locator("#shrink-image input[type=file]").set_input_files(str(examples["coffee"]))
    page.locator("#shrink-image img[src*='coffee']").wait_for(state="attached")
    _run(page, "Layer 4 of 10: stage 3, block 4")
    assert page.locator("#shrink-top-classes [data-testid$='-confidence-set']").count() == 5

    # a model without a Hub file: the untrained warning, as in the classification tab
    page.locator("#shrink-model input").click()
    page.get_by_role("option", name="uniformer_xs_192_in1k", exact=False).click()
    warning = page.locator("#shrink-weights-banner").get_by_text("untrained random weights: its predictions are "
                                                                  "meaningless")
    warning.wait_for()
    assert "Google Drive" in page.locator("#shrink-weights-banner").inner_text()
    expect(page.locator("#shrink-caption")).to_have_text("")  # no stale result next to another model
    shutil.copyfile(SCREENSHOT, tmp_path / "shrinking.png")
