"""The segmentation and pose tabs as a user meets them: ``python app.py`` in a subprocess, offline, driven by
Chromium (Playwright).

The server's offline Hub cache holds ``Andy1621/uniformer/upernet_global_small.pth`` in the mmseg
format (synthetic weights), so segmentation runs with "official" weights and no warning; the pose
checkpoints are Google-Drive-only, so the pose tab runs untrained weights and must say so. Needs
``/usr/bin/chromium`` (Debian package ``chromium``); without it the tests fail, they do not skip.
Screenshots: /tmp/uniformer_seg_screenshot.png and /tmp/uniformer_pose_screenshot.png.
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from app.examples import write_examples

SEG_SCREENSHOT = Path("/tmp/uniformer_seg_screenshot.png")
POSE_SCREENSHOT = Path("/tmp/uniformer_pose_screenshot.png")
RUN_TIMEOUT_MS = 600_000  # a UperNet-S forward on a busy CPU takes tens of seconds
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
             "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
             "left_ankle", "right_ankle")
HUB_DESCRIPTION = "official Hub checkpoint Andy1621/uniformer/upernet_global_small.pth"


@pytest.fixture(scope="module")
def server(app_url):
    """URL of the shared ``python app.py`` (conftest.app_url) whose offline Hub cache holds the
    UperNet-S checkpoint."""
    return app_url


def _upload(page, component: str, path: Path) -> None:
    remove = page.locator(f"#{component} button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    page.locator(f"#{component} input[type=file]").set_input_files(str(path))
    page.locator(f"#{component} img[src*='{path.name}']").wait_for(state="attached")


def _choose(page, component: str, text: str) -> None:
    page.locator(f"#{component} label", has_text=text).first.click()


def _expect_column(page, component: str, column: int, values: list[str], timeout: float = 30_000) -> None:
    """Wait until column ``column`` (0-based) of the table ``component`` reads ``values``, top to bottom
    (Gradio 6 renders the body as a virtual grid of ``div[role=gridcell]``; short tables are fully rendered)."""
    cells = page.locator(f"#{component} [role=gridcell][data-col='{column}']")
    expect(cells).to_have_text(values, timeout=timeout)


def _cell(page, component: str, row: int, column: int):
    return page.locator(f"#{component} [data-testid='cell-{row}-{column}']")


def test_segmentation_tab(server, page, tmp_path):
    photo = write_examples()["coffee"]
    page.goto(server)
    page.get_by_role("tab", name="Segmentation").click()
    page.locator("#seg-weights").get_by_text(HUB_DESCRIPTION).wait_for()
    assert not page.locator("#seg-weights-banner").inner_text().strip()  # trained weights: no warning

    _upload(page, "seg-image", photo)
    _choose(page, "seg-scale", "256 (fast)")
    _choose(page, "seg-mode", "window")
    page.click("#seg-run")
    page.locator("#seg-details").get_by_text("Inference:").wait_for(timeout=RUN_TIMEOUT_MS)
    details = page.locator("#seg-details").inner_text()
    assert HUB_DESCRIPTION in details and "window: 1 window of 32\u00d732" in details and "384\u00d7256" in details
    legend = page.locator("#seg-legend .seg-legend > div")
    assert legend.count() >= 1 and "%" in legend.first.inner_text()
    assert page.locator("#seg-classes input[type=checkbox]").count() >= 1
    _expect_column(page, "seg-timings", 0, ["window"])
    for name in ("overlay.png", "mask.png", "classes.json"):
        expect(page.locator(f"#seg-files a[href$='/{name}']")).to_have_count(1)

    page.click("#seg-compare")  # time all three modes
    _expect_column(page, "seg-timings", 0, ["global", "window", "hybrid"], timeout=RUN_TIMEOUT_MS)
    expect(_cell(page, "seg-timings", 0, 3)).to_have_text("1.00\u00d7")
    expect(_cell(page, "seg-timings", 0, 4)).to_have_text("100")

    first_class = page.locator("#seg-classes label").first
    first_class.click()  # hide the largest class: re-drawn without running the model
    expect(page.locator("#seg-legend .seg-legend > div").first).to_have_attribute("style", re.compile("line-through"))
    page.locator("#seg-overlay img").wait_for(state="attached")
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "seg.png"), full_page=True)
    shutil.copyfile(tmp_path / "seg.png", SEG_SCREENSHOT)

    bad = tmp_path / "notes.jpg"
    bad.write_text("these are my notes, not a photo\n" * 20)
    _upload_raw(page, "seg-image", bad)
    page.click("#seg-run")
    expect(page.get_by_text("This file cannot be used as an image: notes.jpg is not an image file")).to_be_visible()

    _upload(page, "seg-image", photo)  # the app keeps serving
    _choose(page, "seg-mode", "hybrid")
    page.click("#seg-run")
    page.locator("#seg-details").get_by_text("hybrid: 1 window of 32").wait_for(timeout=RUN_TIMEOUT_MS)


def _upload_raw(page, component: str, path: Path) -> None:
    """Upload a file that the browser cannot show as an image (waits for the upload, not the picture)."""
    remove = page.locator(f"#{component} button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    with page.expect_response(lambda r: "/upload" in r.url):
        page.locator(f"#{component} input[type=file]").set_input_files(str(path))
    page.wait_for_timeout(500)


def _fetch_image(page, src: str) -> Image.Image:
    """The picture an <img> shows, fetched with the page's own session."""
    response = page.request.get(src)
    assert response.ok, src
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def _is_box_red(rgb) -> bool:
    """The colour the Pose tab draws person boxes in ((255, 64, 64))."""
    r, g, b = rgb
    return r > 200 and g < 110 and b < 110


def test_pose_tab(server, page, tmp_path):
    photo = write_examples()["astronaut"]  # 512 x 512
    page.goto(server)
    page.get_by_role("tab", name="Pose").click()
    banner = page.locator("#pose-weights-banner")
    banner.get_by_text("untrained random weights: its predictions are meaningless").wait_for()
    assert "Google Drive" in banner.inner_text() and "upload a checkpoint file" in banner.inner_text()
    assert "UNIFORMER_CHECKPOINT_DIR" in banner.inner_html()  # the operator's route, collapsed

    _upload(page, "pose-image", photo)
    picture = page.locator("#pose-image img").first
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.05})  # two corners of the person
    page.wait_for_timeout(800)
    picture.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.95})
    expect(page.locator("#pose-box textarea, #pose-box input").first).not_to_have_value("", timeout=30_000)
    x, y, w, h = (float(v) for v in page.locator("#pose-box textarea, #pose-box input").first.input_value().split(","))
    assert 80 < x < 125 and 10 < y < 40 and 230 < w < 280 and 440 < h < 480, (x, y, w, h)
    # the box is drawn on the photo that was clicked (no separate preview)
    expect(picture).to_have_attribute("src", re.compile(r"pose_box_\w+\.png"))
    clicked = _fetch_image(page, picture.get_attribute("src"))
    assert clicked.size == (512, 512)
    edges = [(round(x + w * f), round(y)) for f in (0.2, 0.5, 0.8)] + [(round(x), round(y + h * f)) for f in (0.3, 0.7)]
    assert all(_is_box_red(clicked.getpixel(p)) for p in edges), [clicked.getpixel(p) for p in edges]
    assert page.locator("#pose-box-preview").count() == 0

    page.click("#pose-run")
    page.locator("#pose-details").get_by_text("Inference:").wait_for(timeout=RUN_TIMEOUT_MS)
    details = page.locator("#pose-details").inner_text()
    assert "Flip test: on" in details and f"{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}" in details
    for row, name in enumerate(KEYPOINTS[:5]):  # the first rows (a long table is rendered as you scroll)
        expect(_cell(page, "pose-table", row, 1)).to_have_text(name)
    for name in ("pose.png", "keypoints.json"):
        expect(page.locator(f"#pose-files a[href$='/{name}']")).to_have_count(1)
    link = page.locator("#pose-files a[href$='/keypoints.json']").first
    with page.expect_download() as download_info:
        link.click()
    data = json.loads(Path(download_info.value.path()).read_text())
    assert len(data["persons"][0]["joints"]) == 17 and data["keypoint_names"][0] == "nose"
    page.locator("#pose-overlay img").wait_for(state="attached")
    # the model ran on the clean photo: the drawing of the keypoints has no person box in it
    with page.expect_download() as download_info:
        page.locator("#pose-files a[href$='/pose.png']").first.click()
    drawn = Image.open(download_info.value.path()).convert("RGB")
    assert sum(_is_box_red(drawn.getpixel(p)) for p in edges) <= 1  # a joint may fall on one of them
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "pose.png"), full_page=True)
    shutil.copyfile(tmp_path / "pose.png", POSE_SCREENSHOT)

    page.locator("#pose-box textarea, #pose-box input").first.fill("5000, 0, 10, 10")
    page.click("#pose-run")
    expect(page.get_by_text("lies outside the 512x512 image").first).to_be_visible()
