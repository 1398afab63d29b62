"""The app as a program and as a user meets it, on ONE live ``python app.py`` (offline):

* the programmatic API through ``gradio_client``: every public endpoint is a task endpoint, each is
  called once with real media (the shipped example photos, a moving-digits clip, a held-out
  digit) and its result checked; ``/explain`` with a point returns its maps; the README's
  "Use the app from Python" examples are these calls;
* the browser (headless Chromium): a typed Detection threshold redraws, Pose's threshold is live,
  the Image tab offers no digits model, untrained top-k show real percentages; a screenshot of
  every tab is saved under ``/tmp/shots/`` (``<tab>.png``).

The server's offline Hub cache holds synthetic weights of uniformer_small_in1k in the official
format; every other model runs its untrained fallback (or the project weights shipped in the
package), which is what these tests need: shapes, wiring, messages, not accuracy.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from appfiles import app_server, browser_page, chromium_browser, make_hub_home, wait_until_up

from app.examples import write_examples

START_TIMEOUT_S = 300
SHOTS = Path("/tmp/shots")
TASK_ENDPOINTS = {"/classify", "/explain", "/shrink", "/segment", "/detect", "/pose", "/classify_video", "/digits"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URL of one ``python app.py`` for the whole module (offline; uniformer_small_in1k in the Hub cache)."""
    tmp = tmp_path_factory.mktemp("api")
    log = tmp / "app.log"
    with app_server(make_hub_home(tmp / "hf_home"), log) as (process, url):
        wait_until_up(process, url, log, START_TIMEOUT_S)
        yield url


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
        assert not [l for l in labels if re.fullmatch(r"value_\d+", l or "")], (name, labels)
        description = endpoint.get("description") or ""
        assert len(description) > 40 and not re.search(r":(func|class|data|meth):`|``", description), (name, description)


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


def test_digits(client):
    from app import digits_handlers as dh

    example = next(iter(dh.write_digit_examples().values()))
    digit, label, attention, caption, shrinking, table, details = client.predict(_file(example), api_name="/digits")
    assert Path(digit).is_file() and len(label["confidences"]) == 3
    assert "Prediction" in details and len(shrinking) >= 1
