"""The Detection tab (and the Pose tab's person finder) as a user meets them: ``python app.py`` in a
subprocess, offline, driven by Chromium (Playwright).

The detection checkpoints are on Google Drive only, so offline every detector runs untrained weights:
the tab must say so, explain why nothing passes the default threshold, and show the candidates when
the threshold is lowered, without running the network again. The test picks the light XXS detector
and the fastest resolution to stay quick. Needs ``/usr/bin/chromium`` (Debian package ``chromium``);
without it the test fails, it does not skip. Screenshots: /tmp/uniformer_detection_screenshot.png and
/tmp/uniformer_pose_detector_screenshot.png.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from appfiles import make_bad_images
from playwright.sync_api import expect

from app.examples import write_examples

SCREENSHOT = Path("/tmp/uniformer_detection_screenshot.png")
POSE_SCREENSHOT = Path("/tmp/uniformer_pose_detector_screenshot.png")
RUN_TIMEOUT_MS = 300_000  # the XXS detector at 533x320 on a busy CPU: seconds to tens of seconds


@pytest.fixture(scope="module")
def server(app_url_untrained):
    """URL of the shared ``python app.py`` with an empty offline Hub cache (conftest.py)."""
    return app_url_untrained


def _rows(page) -> int:
    """Rows of the detections table (Gradio 6 renders the body as a grid of ``div[role=gridcell]``)."""
    return page.locator("#det-table [role=gridcell][data-col='1']").count()


def _set_threshold(page, value: str) -> None:
    """Type a threshold and leave the box, as a user does (the slider's ``release``)."""
    number = page.locator("#det-threshold input[type=number]")
    number.fill(value)
    number.press("Tab")


def test_detection_tab(server, page, tmp_path):
    page.goto(server)
    page.get_by_role("tab", name="Detection").click()
    banner = page.locator("#det-weights-banner")
    banner.get_by_text("mask_rcnn_1x_hybrid_small runs with untrained random weights").wait_for()
    assert "Google Drive" in banner.inner_text() and "upload a checkpoint file" in banner.inner_text()
    assert "UNIFORMER_CHECKPOINT_DIR" in banner.inner_html()  # the operator's route, collapsed
    expect(page.locator("#det-mode input[value=hybrid]")).to_be_checked()

    # the light model: its stage 3 has no windows, so the attention choice is disabled
    page.locator("#det-model input").click()
    page.get_by_role("option", name="mask_rcnn_1x_xxs", exact=False).click()
    banner.get_by_text("mask_rcnn_1x_xxs runs with untrained random weights").wait_for()
    expect(page.locator("#det-mode input[value=global]")).to_be_checked()
    expect(page.locator("#det-mode input[value=hybrid]")).to_be_disabled()
    expect(page.locator("#det-mode")).to_contain_text("no windows")
    page.locator("#det-scale label", has_text="320 (fast)").click()

    # an example from the tab's gallery, then Detect
    page.locator("[role=tabpanel]:visible button.gallery-item").first.click()
    page.locator("#det-image img[src*='coffee']").wait_for(state="attached")
    page.click("#det-run")
    page.locator("#det-details").get_by_text("Proposals:").wait_for(timeout=RUN_TIMEOUT_MS)
    details = page.locator("#det-details").inner_text()
    assert "mask_rcnn_1x_xxs" in details and "network 480\u00d7320" in details and "hourglass" in details
    note = page.locator("#det-note")
    expect(note).to_contain_text("Untrained weights: these predictions are meaningless")
    expect(note).to_contain_text("Nothing is shown: no detection scores \u2265 0.30")
    page.locator("#det-overlay img").wait_for(state="attached")
    assert _rows(page) == 0
    timing = page.locator("#det-timing").inner_text()
    assert "backbone (UniFormer)" in timing and "RoI heads" in timing and "Total:" in timing
    runs = page.locator("#det-timing").inner_html()

    # lower the threshold: the kept candidates appear, re-drawn without running the network
    before = page.locator("#det-overlay img").get_attribute("src")
    _set_threshold(page, "0")
    expect(note).to_contain_text("Showing 100 of 100 detections (score \u2265 0.00)")
    expect(page.locator("#det-overlay img")).not_to_have_attribute("src", before)
    expect(page.locator("#det-table [role=gridcell][data-col='1']").first).not_to_have_text("")
    assert _rows(page) > 0

    # the class filter: untick all, then tick the rarest classes (random weights: one class or more)
    labels = page.locator("#det-classes label:not(.select-all-label):has(input[type=checkbox])")
    n = labels.count()
    assert n >= 1
    page.locator("#det-classes input.select-all-checkbox").click()
    expect(note).to_contain_text("Showing 0 of 100")
    picked = list(range(n))[-2:] if n >= 3 else [n - 1]
    names = [labels.nth(i).inner_text().strip() for i in picked]
    counts = [int(re.search(r"\((\d+)\)$", name).group(1)) for name in names]
    for k, i in enumerate(picked):
        labels.nth(i).click()
        expect(note).to_contain_text(f"Showing {sum(counts[:k + 1])} of 100")
    shown = {re.sub(r" \(\d+\)$", "", name) for name in names}
    expect(page.locator("#det-table [role=gridcell][data-col='1']").first).to_have_text(re.compile("|".join(shown)))
    assert page.locator("#det-timing").inner_html() == runs  # the network did not run again

    # downloads: the drawing and the shown detections as COCO results
    for name in ("detections.png", "detections_coco.json"):
        expect(page.locator(f"#det-files a[href$='/{name}']")).to_have_count(1)
    with page.expect_download() as download_info:
        page.locator("#det-files a[href$='/detections_coco.json']").first.click()
    items = json.loads(Path(download_info.value.path()).read_text())
    assert len(items) == sum(counts)
    assert {i["category_name"] for i in items} == shown
    assert all(i["segmentation"]["size"] == [400, 600] and len(i["bbox"]) == 4 for i in items)

    page.locator("#det-overlay img").wait_for(state="attached")
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "detection.png"), full_page=True)
    shutil.copyfile(tmp_path / "detection.png", SCREENSHOT)

    # a file that is not an image: a message in words, and the app keeps serving
    bad = make_bad_images(tmp_path, write_examples()["coffee"])["text"]
    page.locator("#det-image button[aria-label='Remove Image']").click()
    with page.expect_response(lambda r: "/upload" in r.url):
        page.locator("#det-image input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(500)
    page.click("#det-run")
    expect(page.get_by_text("This file cannot be used as an image: notes.jpg is not an image file")).to_be_visible()
    expect(page.locator("#det-overlay img")).to_have_count(0)  # the old result went with the old image
    page.locator("[role=tabpanel]:visible button.gallery-item").nth(1).click()  # and the app keeps serving
    page.locator("#det-image img[src*='astronaut']").wait_for(state="attached")


def test_pose_tab_uses_only_a_trained_detector(server, page):
    page.goto(server)
    page.get_by_role("tab", name="Pose").click()
    note = page.locator("#pose-detector-note")
    expect(note).to_contain_text("mask_rcnn_1x_hybrid_small has no trained weights here")
    expect(note).to_contain_text("not used")
    page.locator("[role=tabpanel]:visible button.gallery-item").first.click()  # the astronaut
    page.locator("#pose-image img[src*='astronaut']").wait_for(state="attached")
    page.click("#pose-find-people")
    expect(note).to_contain_text("The detector was not run.")
    assert "mask_rcnn_1x_hybrid_small has no trained weights here" in note.inner_text()
    expect(page.locator("#pose-box textarea, #pose-box input").first).to_have_value("")  # still the whole image
    expect(page.locator("#pose-box-preview img")).to_have_count(0)
    page.screenshot(path=str(POSE_SCREENSHOT), full_page=True)
