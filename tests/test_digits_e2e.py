"""The project-trained models as a user meets them: ``python app.py`` in a subprocess, offline with an
empty Hugging Face cache (so only what the package ships has trained weights), driven by Chromium.

Digits tab: the weights line names the shipped checkpoint; the user draws a digit on the sketchpad
with the mouse and sees the 8x8 digit, the top-3, the attention and token-shrinking views; then picks a
held-out example. Video tab: it opens with the moving-digits model (the official default cannot be
had offline), says so, classifies a generated moving-digits example correctly and shows where a clicked
token looks. Needs ``/usr/bin/chromium``; without it the test fails, it does not skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from appfiles import browser_page
from playwright.sync_api import expect

import uniformer
from uniformer.models.digits import DIGITS_MODEL, MOVING_DIGITS_MODEL

SCREENSHOT = Path("/tmp/uniformer_digits_screenshot.png")
VIDEO_SCREENSHOT = Path("/tmp/uniformer_moving_digits_screenshot.png")
RUN_TIMEOUT_MS = 120_000
PACKAGE = Path(uniformer.__file__).resolve().parent


@pytest.fixture(scope="module")
def server(app_url_untrained):
    """The shared ``python app.py`` with an empty Hub cache (conftest.py): the digits models ship
    their weights in the package."""
    return app_url_untrained


@pytest.fixture(scope="module")
def page(browser):
    with browser_page(browser, height=1100) as p:
        yield p


def _card(name: str) -> dict:
    return json.loads((PACKAGE / "weights" / name / "config.json").read_text())


def _draw(page, strokes) -> None:
    """Draw ``strokes`` (lists of (x, y) fractions of the canvas) with the mouse on the sketchpad,
    without picking a tool first (the brush is the tool the tab opens with)."""
    canvas = page.locator("#digits-sketch canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    for stroke in strokes:
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for a, b in zip(points, points[1:]):
            for k in range(1, 9):  # small steps, as a hand moves
                page.mouse.move(a[0] + (b[0] - a[0]) * k / 8, a[1] + (b[1] - a[1]) * k / 8)
        page.mouse.up()


def _top_label(page) -> str:
    return page.locator("#digits-top [data-testid='label-output-value']").inner_text().strip()


def test_draw_a_digit_and_see_it_read_and_explained(server, page):
    page.goto(server)
    page.get_by_role("tab", name="Digits").click()
    top1 = _card(DIGITS_MODEL)["metrics"]["val_top1"]
    page.locator("#digits-weights").get_by_text(
        f"project-trained checkpoint {DIGITS_MODEL} (trained by this project on scikit-learn digits, "
        f"{top1:.2f}% held-out)").wait_for()
    assert "runs offline" in page.locator("#digits-weights").inner_text()
    assert not page.locator("#digits-weights-banner").inner_text().strip()
    expect(page.locator("#digits-details")).to_contain_text("Nothing drawn yet")
    # the label above the canvas is whole: not under the editor's toolbar, not clipped
    label, editor = page.locator("#digits-sketch-label"), page.locator("#digits-sketch")
    label_box, editor_box = label.bounding_box(), editor.bounding_box()
    assert label_box["y"] + label_box["height"] <= editor_box["y"] + 1, (label_box, editor_box)
    assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1")

    # a "7": a bar across the top and a long stroke down to the bottom left
    _draw(page, [[(0.25, 0.18), (0.75, 0.18), (0.45, 0.85)]])
    page.locator("#digits-details").get_by_text("Prediction:").wait_for(timeout=RUN_TIMEOUT_MS)
    assert _top_label(page) == "7"
    assert page.evaluate("() => String(window.getSelection())").strip() == ""  # the drag drew, it selected no text
    assert page.locator("#digits-top [data-testid$='-confidence-set']").count() == 3
    expect(page.locator("#digits-input img")).to_be_visible()
    expect(page.locator("#digits-attention img").first).to_be_visible()
    assert page.locator("#digits-shrinking img").count() >= 4
    expect(page.locator("#digits-attention-caption")).to_contain_text("global MHRA attention")
    expect(page.locator("#digits-shrinking-table")).to_contain_text("S4\u00b7B1")
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a held-out example from the gallery: the model reads it as its digit
    panel = page.locator("[role=tabpanel]:visible")
    panel.locator("button.gallery-item").nth(3).click()  # the "3"
    expect(page.locator("#digits-top [data-testid='label-output-value']")).to_have_text("3", timeout=RUN_TIMEOUT_MS)


def test_video_tab_opens_with_the_moving_digits_model_and_classifies_an_example(server, page):
    page.goto(server)
    page.get_by_role("tab", name="Video").click()
    top1 = _card(MOVING_DIGITS_MODEL)["metrics"]["val_top1"]
    page.locator("#video-weights").get_by_text(f"project-trained checkpoint {MOVING_DIGITS_MODEL}").wait_for()
    assert f"{top1:.2f}% held-out" in page.locator("#video-weights").inner_text()
    assert "Offline default" in page.locator("#video-offline-note").inner_text()
    assert MOVING_DIGITS_MODEL in page.locator("#video-model input").input_value()

    panel = page.locator("[role=tabpanel]:visible")
    panel.locator("button.gallery-item").nth(1).click()  # moving_digits_1_right.mp4
    page.locator("#video-input video").wait_for(state="attached")
    page.click("#video-classify")
    page.locator("#video-details").get_by_text("Inference:").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#video-top-classes [data-testid='label-output-value']")).to_have_text("right")
    assert "checkpoint trained by this project" in page.locator("#video-details").inner_text()
    page.locator("#video-strip img").wait_for()
    # the 32-px frames are shown enlarged; a click on them picks a token for the space-time attention
    page.locator("#video-attn-frame img").click(position={"x": 150, "y": 60})
    page.locator("#video-attn-caption").get_by_text("own time step").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#video-attn-map img")).to_be_visible()
    page.wait_for_timeout(800)
    page.screenshot(path=str(VIDEO_SCREENSHOT), full_page=True)
