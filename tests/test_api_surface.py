"""What the app answers to any HTTP caller, through one running ``python app.py``.

The public API is exactly the eight task endpoints (gradio_client's ``view_api``, undocumented ones
included), with real probabilities as confidences. The page's own (private) events still answer any
HTTP caller, as they must for the browser: a few are called directly, the way the browser does
(``/gradio_api/queue/join`` by event index), with what a script could send instead: files outside
the uploads, numbers outside the controls' bounds, clicks outside the photo. Each is refused with a
message and does no work.
"""
from __future__ import annotations

import json
import re
import uuid

import pytest

from app.digits_handlers import write_digit_examples
from app.examples import write_examples
from app.video_handlers import write_moving_digits_examples

TASK_ENDPOINTS = {"/classify", "/explain", "/shrink", "/segment", "/detect", "/pose", "/classify_video", "/digits"}


@pytest.fixture(scope="module")
def server(app_url):
    """The session's shared ``python app.py`` (tests/conftest.py), without the trailing slash."""
    return app_url.rstrip("/")


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def _file(path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def _event_index(server: str, event: str) -> int:
    """The index of the page's (private) event ``event``: the function name Gradio gave it, or
    '<elem_id>' for the one private event taking the component with that elem_id as an input."""
    import httpx

    config = httpx.get(f"{server}/config").json()
    elem_ids = {c["id"]: (c.get("props") or {}).get("elem_id") for c in config["components"]}
    found = [dep for dep in config["dependencies"] if dep.get("api_visibility") == "private" and (
        dep.get("api_name") == event or any(f"<{elem_ids.get(i)}>" == event for i in dep["inputs"]))]
    assert len(found) == 1, (event, [d.get("api_name") for d in found])
    return found[0]["id"]


def call_event(server: str, event: str, data: list, event_data: dict | None = None) -> tuple[bool, str | None]:
    """Run the page's event ``event`` (see :func:`_event_index`) as the browser does -> (success, error
    message or None)."""
    import httpx

    session = uuid.uuid4().hex
    body = {"data": data, "event_data": event_data, "fn_index": _event_index(server, event), "trigger_id": None,
            "session_hash": session}
    assert httpx.post(f"{server}/gradio_api/queue/join", json=body).status_code == 200
    with httpx.stream("GET", f"{server}/gradio_api/queue/data", params={"session_hash": session}, timeout=300) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return bool(message.get("success")), (message.get("output") or {}).get("error")
    raise AssertionError("the event never completed")


def _upload(server: str, path) -> str:
    import httpx

    with open(path, "rb") as f:
        return httpx.post(f"{server}/gradio_api/upload", files={"files": f}).json()[0]


def test_the_public_api_is_exactly_the_eight_task_endpoints(client):
    every = client.view_api(return_format="dict", print_info=False, all_endpoints=True)
    assert set(every["named_endpoints"]) == TASK_ENDPOINTS, sorted(every["named_endpoints"])  # no /load_example*
    assert not every["unnamed_endpoints"]


def test_classify_confidences_are_the_real_probabilities(client):
    from gradio_client import handle_file

    # untrained weights (the Hub cache holds only uniformer_small_in1k): near-uniform over 1000 classes
    label, details = client.predict(handle_file(str(write_examples()["chelsea"])), "uniformer_xxs_128_in1k", "fp32",
                                    api_name="/classify")
    confidences = [c["confidence"] for c in label["confidences"]]
    named = [float(re.search(r"\u00b7 ([\d.]+) %$", c["label"]).group(1)) / 100 for c in label["confidences"]]
    assert confidences == pytest.approx(named, rel=0.05)  # the number in the name is the bar's
    assert confidences[0] < 0.05 and sum(confidences) < 0.25  # a probability, not 1.0 relative to the best
    assert "untrained" in details


def test_private_events_refuse_files_outside_the_uploads(server, tmp_path):
    secret = tmp_path / "not_uploaded.pth"
    secret.write_bytes(b"server-side file" * 10)
    # the Image tab's checkpoint upload and Segmentation's "compare modes", sent a server path
    ok, _ = call_event(server, "<image-checkpoint>", [_file(secret), "uniformer_small_in1k", None])
    assert not ok and secret.exists()
    ok, _ = call_event(server, "<seg-image>", [None, _file(secret), "fpn_xxs", "global", 32, 256, 0.6, True, None])
    assert not ok


def test_private_events_refuse_values_outside_their_bounds(server):
    ok, message = call_event(server, "show_layer", [None, None, 1e9])  # Token shrinking's layer slider
    assert not ok and "greater than maximum" in message
    ok, message = call_event(server, "redraw_pose", [None, 7.5])  # Pose's score threshold slider
    assert not ok and "greater than maximum" in message
    ok, message = call_event(server, "mode_update", ["no_such_detector"])  # a model Detection does not offer
    assert not ok and "not in the list of choices" in message


def test_private_pose_events_check_clicks_and_boxes_like_the_api(server):
    photo = _upload(server, write_examples()["astronaut"])
    ok, message = call_event(server, "pick_corner", [_file(photo), None, None],
                             event_data={"index": [1e12, -5], "value": None})
    assert not ok and "outside the" in message and "photo" in message
    ok, message = call_event(server, "pick_corner", [_file(photo), None, None],
                             event_data={"index": ["a", "b"], "value": None})
    assert not ok and "two numbers" in message
    ok, message = call_event(server, "show_boxes", [_file(photo), None, "1e308, nan, inf, 5"])
    assert not ok and "non-finite" in message
    ok, message = call_event(server, "pick_corner", [_file(photo), None, None],
                             event_data={"index": [100, 50], "value": None})
    assert ok and message is None  # a real click still works


def test_task_endpoints_return_values_not_gradio_updates(client):
    """What a script receives is data: no ``{'__type__': 'update', ...}`` in the outputs (the choices
    of a class filter or a slider's range are set by the page's own events after a run)."""
    from gradio_client import handle_file

    photo = handle_file(str(write_examples()["coffee"]))
    outputs = {
        "/classify": client.predict(photo, "uniformer_small_in1k", "fp32", api_name="/classify"),
        "/shrink": client.predict(photo, "uniformer_xxs_128_in1k", 0.5, 2, api_name="/shrink"),
        "/segment": client.predict(photo, "fpn_xxs", "global", 32, 256, 0.6, True, api_name="/segment"),
        "/detect": client.predict(photo, "mask_rcnn_1x_xxs", "global", 320, 0.0, 0.45, True, True, "fp32",
                                  api_name="/detect"),
        "/pose": client.predict(photo, "top_down_256x192_global_small", "", False, 0.0, api_name="/pose"),
        "/digits": client.predict(photo, api_name="/digits"),
        "/explain": client.predict(photo, "uniformer_small_in1k", 200, 150, 16, 3, api_name="/explain"),
        "/classify_video": client.predict(handle_file(str(next(iter(write_moving_digits_examples().values())))),
                                          "uniformer_xxs_moving_digits", "1x1", api_name="/classify_video"),
    }
    assert set(outputs) == TASK_ENDPOINTS
    for endpoint, out in outputs.items():
        assert "__type__" not in json.dumps(out, default=str), (endpoint, out)
    assert outputs["/shrink"][-1] == 2  # the hourglass layer shown
    classes, legend = outputs["/segment"][1], outputs["/segment"][2]
    assert classes and all(isinstance(c, int) for c in classes) and "%" in legend  # the class indices shown
    assert isinstance(outputs["/detect"][2], list) and all(isinstance(c, int) for c in outputs["/detect"][2])
    layer, head = outputs["/explain"][-3:-1]
    assert (layer, head) == (16, 3)  # the layer and head shown (stage 4 of the small model has 8 heads)
    assert outputs["/classify_video"][6] == 1  # the frame shown: the clip's first


def test_explain_clamps_the_head_it_shows_as_a_value(client):
    from gradio_client import handle_file

    # layer 2 is a stage-1 local block with one channel group: head 3 becomes 1, a plain number
    out = client.predict(handle_file(str(write_examples()["coffee"])), "uniformer_small_in1k", 200, 150, 2, 3,
                         api_name="/explain")
    assert tuple(out[-3:-1]) == (2, 1) and "__type__" not in json.dumps(out, default=str)


def test_the_video_examples_event_refuses_an_index_outside_the_gallery(server):
    for index in (10**6, -1, "0"):
        ok, message = call_event(server, "<video-examples>", [index])
        assert not ok and "no example" in message, (index, message)
    ok, message = call_event(server, "<video-examples>", [0])
    assert ok and message is None  # a real example still loads


def test_the_sketchpad_event_refuses_a_picture_too_large_before_decoding_it(server, tmp_path):
    from appfiles import write_bilevel_png

    bomb = write_bilevel_png(tmp_path / "sketch.png", 12000, 8000)  # 15 KB claiming 96 megapixels
    upload = {**_file(_upload(server, bomb)), "orig_name": "sketch.png"}
    ok, message = call_event(server, "classify_sketch", [{"background": upload, "layers": [], "composite": upload}])
    assert not ok and "12000\u00d78000 pixels" in message
    digit = {**_file(_upload(server, sorted(write_digit_examples().values())[0])), "orig_name": "digit.png"}
    ok, message = call_event(server, "classify_sketch", [{"background": digit, "layers": [], "composite": digit}])
    assert ok and message is None  # a picture of the sketchpad's size is read as before
