"""The Weights panel as a user meets it: ``python app.py`` in a subprocess, driven by Chromium.

One user uploads a checkpoint file for the smallest ImageNet model in the Image classification tab
(the digits model has its own tab): the weights line says "local file" with the file's name (never a
server path) and Classify runs it; another user (another browser context: another session) keeps
the shared weights (untrained offline), and a file that is not a checkpoint gets the safe loader's
clear error. Needs ``/usr/bin/chromium``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from appfiles import browser_page
from playwright.sync_api import expect

import uniformer

MODEL = "uniformer_xxs_128_in1k"  # the smallest model the Image tab offers: a 41 MB checkpoint
#: Opening the page loads every tab's default model (queued, two at a time): slow on a busy CPU.
LOAD_TIMEOUT_MS = 240_000
SCREENSHOT = Path("/tmp/shots/weights_upload.png")


@pytest.fixture(scope="module")
def server(app_url_untrained):
    """URL of the shared ``python app.py`` with an empty offline Hub cache (conftest.py)."""
    return app_url_untrained


def _select_model(page) -> None:
    page.locator("#weights").get_by_text("Weights:").wait_for(timeout=LOAD_TIMEOUT_MS)
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile(f"^{MODEL}")).click()
    page.locator("#weights").get_by_text("untrained").wait_for(timeout=LOAD_TIMEOUT_MS)


def test_uploaded_checkpoint_is_live_for_this_session_only(server, browser, tmp_path):
    good = tmp_path / "my_xxs.pth"
    torch.save(uniformer.create_model(MODEL).state_dict(), good)  # untrained, but a valid checkpoint of MODEL
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")

    with browser_page(browser) as page:
        page.goto(server)
        _select_model(page)
        page.locator("#image-weights-panel").get_by_text("Weights: official download").click()
        page.locator("#image-checkpoint input[type=file]").set_input_files(str(good))
        weights = page.locator("#weights")
        weights.get_by_text("local file").wait_for()
        assert "my_xxs.pth" in weights.inner_text() and "this session only" in weights.inner_text()
        page.locator("[role=tabpanel]:visible button.gallery-item").first.click()
        page.click("#classify")
        page.locator("#details").get_by_text("local checkpoint file my_xxs.pth").wait_for()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert str(tmp_path) not in page.inner_text("body") and "/tmp/gradio" not in page.inner_text("body")

        with browser_page(browser) as other:  # another user: the shared weights, unchanged
            other.goto(server)
            _select_model(other)
            other.locator("#image-weights-panel").get_by_text("Weights: official download").click()
            other.locator("#image-checkpoint input[type=file]").set_input_files(str(bad))
            expect(other.get_by_text(f"notes.pth cannot be used as weights of {MODEL}")).to_be_visible()
            assert "InvalidCheckpointError" in other.inner_text("body")
            assert "untrained" in other.locator("#weights").inner_text()

        assert "local file" in weights.inner_text()  # the first user's upload is still live
