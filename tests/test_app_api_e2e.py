"""The app as a program and as a user meets it, on ONE live ``python app.py`` (offline):

* the programmatic API through ``gradio_client``: every public endpoint is a task endpoint, each is
  called once with real media (the shipped example photos, a moving-digits clip, a held-out
  digit) and its result checked; ``/explain`` with a point returns its maps; the README's
  "Use the app from Python" examples are these calls;
* the browser (headless Chromium): a typed Detection threshold redraws, Pose's threshold is live,
  the Image tab offers no digits model, untrained top-k show real percentages; a screenshot of
  every tab is saved under ``/tmp/shots/`` (``<tab>.png``).

The server (conftest.app_url, shared with the other e2e modules) has synthetic weights in the official
format for the tabs' default Hub checkpoints (uniformer_small_in1k among them); every other model runs
its untrained fallback (or the project weights shipped in the
package), which is what these tests need: shapes, wiring, messages, not accuracy.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from appfiles import browser_page

from app.examples import write_examples

SHOTS = Path("/tmp/shots")
TASK_ENDPOINTS = {"/classify", "/explain", "/shrink", "/segment", "/detect", "/pose", "/classify_video", "/digits"}


@pytest.fixture(scope="module")
def server(app_url):
    """URL of the shared ``python app.py`` (conftest.app_url: offline, official-format synthetic weights
    of the tabs' default Hub checkpoints, uniformer_small_in1k among them)."""
    return app_url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def photos():
    return write_examples()


def _file(path) -> dict:
    from gradio_client import handle_file

    return handle_file(str(path))


def test_public_endpoints_are_the_task_endpoints_named_and_described(client):
    api = client.view_api(return_format="dict", print_info=False)
    named = api["named_endpoints"]
    assert set(named) == TASK_ENDPOINTS, sorted(named)
    assert not api["unnamed_endpoints"]
    for name, endpoint in named.items():
        labels = [r["label"] for r in endpoint["returns"]]
        assert not [label for label in labels if re.fullmatch(r"value_\d+", label or "")], (name, labels)
        description = endpoint.get("description") or ""
        assert len(description) > 40 and not re.search(r":(func|class|data|meth):`|``", description), \
            (name, description)


def test_classify_a_photo(client, photos):
    label, details = client.predict(_file(photos["chelsea"]), "uniformer_small_in1k", "fp32", api_name="/classify")
    assert len(label["confidences"]) == 5
    assert "uniformer_small_in1k" in details and "Inference" in details


def test_explain_a_point_returns_its_maps(client, photos):
    out = client.predict(_file(photos["chelsea"]), "uniformer_small_in1k", 220, 150, 10, 0, api_name="/explain")
    canvas, info, lvg, erf, *_, rollout, layer, head, numbers = out
    assert Path(canvas).is_file() and Path(erf).is_file()
    assert len(lvg) == 3 and all(Path(item["image"]).is_file() for item in lvg)
    assert len(rollout) >= 2
    assert "(220, 150)" in info
    shown = numbers["shown"]
    assert shown["layer"] == "stages.2.blocks.2.mhra" and numbers["click"]["x"] == pytest.approx(220, abs=1)
    assert len(numbers["local_vs_global"]) == 3 and len(numbers["top5"]) == 5


def test_explain_without_a_point_says_so(client, photos):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Give the point"):
        client.predict(_file(photos["chelsea"]), "uniformer_small_in1k", None, None, 10, 0, api_name="/explain")


def test_shrink_takes_the_keep_ratio_as_documented(client, photos):
    for ratio, row in (("0.5", 3), (0.25, 5)):  # the docs list strings ('0.5'); a number is accepted too
        overlay, caption, chart, label, details, sweep, layer = client.predict(
            _file(photos["coffee"]), "uniformer_xxs_128_in1k", ratio, 2, api_name="/shrink")
        assert Path(overlay).is_file() and len(label["confidences"]) == 5
        ratios = [r[0] for r in sweep["data"]]
        assert [r.split()[0] for r in ratios] == ["1", "0.8", "0.6", "0.5", "0.4", "0.25"]
        assert [i for i, r in enumerate(ratios) if "\u25c0" in r] == [row]  # the ratio asked for is the one shown


def test_segment(client, photos):
    overlay, classes, legend, details, timings, files = client.predict(
        _file(photos["coffee"]), "fpn_xxs", "global", 14, "256", 0.5, False, api_name="/segment")
    assert Path(overlay).is_file() and len(files) == 3
    assert "fpn_xxs" in details


def test_detect(client, photos):
    overlay, note, classes, table, timing, details, files = client.predict(
        _file(photos["coffee"]), "mask_rcnn_1x_xxs", "hybrid", 320, 0.0, 0.45, True, True, api_name="/detect")
    assert Path(overlay).is_file() and "mask_rcnn_1x_xxs" in details
    assert table["headers"] == ["#", "class", "score", "x1", "y1", "x2", "y2", "mask (px)"]


def test_pose(client, photos):
    overlay, table, details, files = client.predict(
        _file(photos["astronaut"]), "top_down_256x192_global_small", "100, 20, 300, 480", True, 0.0, api_name="/pose")
    assert Path(overlay).is_file() and len(table["data"]) == 17


def test_classify_video(client):
    from app import video_handlers as vh

    clip = next(iter(vh.write_moving_digits_examples().values()))
    label, details, table, strip, timeline, *_ = client.predict(_file(clip), "uniformer_xxs_moving_digits", "1x1",
                                                                api_name="/classify_video")
    assert len(label["confidences"]) == 5 and Path(strip).is_file()
    assert "Trained on a toy domain" in details


def test_classify_video_answers_a_one_frame_video_with_a_note(client, tmp_path):
    from videofiles import write_indexed_video

    one = write_indexed_video(tmp_path / "one.mp4", 1)
    label, details, *_ = client.predict(_file(one), "uniformer_xxs_moving_digits", "1x1", api_name="/classify_video")
    assert len(label["confidences"]) == 5 and "This video has 1 frame: the clip repeats it" in details


def test_digits(client):
    from app import digits_handlers as dh

    example = next(iter(dh.write_digit_examples().values()))
    digit, label, attention, caption, shrinking, table, details = client.predict(_file(example), api_name="/digits")
    assert Path(digit).is_file() and len(label["confidences"]) == 3
    assert "Prediction" in details and len(shrinking) >= 1


# --- the browser, on the same server -----------------------------------------------------------

RUN_TIMEOUT_MS = 300_000


@pytest.fixture
def page(browser, server):
    with browser_page(browser, width=1400, height=900) as p:
        p.goto(server)
        yield p


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def _pick(page, dropdown: str, option: str) -> None:
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=option, exact=False).first.click()


def _type_and_enter(page, elem_id: str, value: str) -> None:
    """Type a value into a slider's number box and press Enter, as a user does."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def _example(page, n: int = 0) -> None:
    page.locator("[role=tabpanel]:visible button.gallery-item").nth(n).click()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _run_example(page, prefix: str, example: int, shot: str) -> None:
    """Pick an example on the open tab, press its run button (#<prefix>-run), wait for the
    overlay (#<prefix>-overlay) and save the screenshot ``shot``."""
    _example(page, example)
    page.locator(f"#{prefix}-image img").wait_for(state="attached")
    page.click(f"#{prefix}-run")
    page.locator(f"#{prefix}-overlay img").wait_for(timeout=RUN_TIMEOUT_MS)
    _shot(page, shot)


def test_image_tab_offers_no_digits_model_and_untrained_top_k_shows_real_percentages(page):
    from playwright.sync_api import expect

    _tab(page, "Image classification")
    page.locator("#model input").click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    names = options.all_inner_texts()
    assert any("uniformer_small_in1k" in n for n in names)
    assert not any("digits" in n for n in names), names
    page.get_by_role("option", name="uniformer_xxs_128_in1k", exact=False).first.click()
    expect(page.locator("#model input")).to_have_value(re.compile("uniformer_xxs_128_in1k"))
    expect(page.locator("#weights")).to_contain_text("untrained random weights")
    _example(page, 0)
    page.locator("#input-image img").wait_for(state="attached")
    page.click("#classify")
    page.locator("#details").get_by_text("Inference").wait_for(timeout=RUN_TIMEOUT_MS)
    text = page.locator("#top-classes").inner_text()
    percentages = re.findall(r"\u00b7 (\d+\.\d+) %", text)
    assert len(percentages) >= 5 and all(float(p) > 0 for p in percentages), text  # the top one is also the heading
    pairs = re.findall(r"\u00b7 (\d+\.\d+) %\n(\d+)%", text)  # (probability in the name, Gradio's rounded bar value)
    assert len(pairs) == 5 and all(abs(int(bar) - float(named)) <= 0.51 for named, bar in pairs), text  # no 100% bar
    expect(page.locator("#details")).to_contain_text("the bars round to whole percents")
    _shot(page, "image_classification")


def test_typed_threshold_redraws_detection(page):
    from playwright.sync_api import expect

    _tab(page, "Detection")
    _pick(page, "det-model", "mask_rcnn_1x_xxs")
    page.locator("#det-weights-banner").get_by_text("mask_rcnn_1x_xxs runs with untrained").wait_for()
    page.locator("#det-scale label", has_text="320 (fast)").click()
    _example(page, 0)
    page.locator("#det-image img").wait_for(state="attached")
    page.click("#det-run")
    page.locator("#det-details").get_by_text("Proposals:").wait_for(timeout=RUN_TIMEOUT_MS)
    note = page.locator("#det-note")
    expect(note).to_contain_text("Nothing is shown")
    before = page.locator("#det-overlay img").get_attribute("src")
    _type_and_enter(page, "det-threshold", "0.01")  # typed + Enter, no drag
    expect(note).to_contain_text("\u2265 0.01")
    expect(page.locator("#det-overlay img")).not_to_have_attribute("src", before)
    _shot(page, "detection")


def test_pose_threshold_is_live(page):
    from playwright.sync_api import expect

    _tab(page, "Pose")
    _example(page, 0)  # the astronaut
    page.locator("#pose-image img").wait_for(state="attached")
    page.click("#pose-run")
    overlay = page.locator("#pose-overlay img")
    overlay.wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#pose-table")).to_contain_text("left_shoulder")
    before = overlay.get_attribute("src")
    _type_and_enter(page, "pose-threshold", "1")  # hide every joint: the drawing changes at once
    expect(overlay).not_to_have_attribute("src", before)
    _type_and_enter(page, "pose-threshold", "0")
    _shot(page, "pose")


def test_screenshots_of_the_other_tabs(page):
    """Every other tab after a run on a shipped example, saved under /tmp/shots/<tab>.png."""
    from playwright.sync_api import expect

    _tab(page, "Explain")
    _shot(page, "explain_before_click")
    _example(page, 0)
    canvas = page.locator("#explain-canvas img")
    canvas.wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#explain-lvg")).to_be_hidden()  # compact before the first click
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.55, "y": box["height"] * 0.45})
    page.locator("#explain-lvg img").first.wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_text("Attention rollout (stages 3-4)").click()  # both gallery rows are shown in full
    rollout = page.locator("#explain-rollout img")
    expect(rollout).to_have_count(6)  # class map, clicked token, 4 stage PCA pictures, in one row
    rollout.last.wait_for()
    page.wait_for_timeout(500)
    frame, last = page.locator("#explain-rollout").bounding_box(), rollout.last.bounding_box()
    assert last["y"] + last["height"] <= frame["y"] + frame["height"] + 1  # no picture is cut off
    _shot(page, "explain")

    _tab(page, "Token shrinking")
    _run_example(page, "shrink", 1, "token_shrinking")

    _tab(page, "Segmentation")
    _pick(page, "seg-model", "fpn_xxs")
    page.locator("#seg-scale label", has_text="256 (fast)").click()
    _run_example(page, "seg", 1, "segmentation")

    _tab(page, "Video")
    _pick(page, "video-model", "uniformer_xxs_moving_digits")  # the server's cache holds the default's weights
    _example(page, 1)  # moving_digits_1_right
    page.locator("#video-input video").wait_for(state="attached")
    page.click("#video-classify")
    page.locator("#video-details").get_by_text("Inference:").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#video-details")).to_contain_text("Trained on a toy domain")
    _shot(page, "video")
    _pick(page, "video-model", "uniformer_small_k400_16x8")
    expect(page.locator("#video-views input[value='4x1']")).to_be_checked()  # the official views

    _tab(page, "Digits")
    _example(page, 3)
    expect(page.locator("#digits-top [data-testid='label-output-value']")).to_have_text("3", timeout=RUN_TIMEOUT_MS)
    _shot(page, "digits")
