"""The Explain tab's handlers without a browser: one forward per (image, model), sliders re-render
from the cache, clear errors for bad input, exports, the bounded thread-safe cache."""
from __future__ import annotations

import json
import threading
import time

import gradio as gr
import pytest
from PIL import Image

import uniformer.explain
from app import explain_handlers as xh
from app import models
from app.cache import LRUCache
from app.examples import write_examples
from appfiles import make_bad_images

MODEL = models.DEFAULT_MODEL  # UniFormer-S at 224: the tab's default


def _select(x: int, y: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [x, y], "value": None})


@pytest.fixture(scope="module")
def photo():
    return str(write_examples()["chelsea"])  # 451 x 300


@pytest.fixture
def counted(monkeypatch):
    """Counts analyses and every forward through the stem of the shared model."""
    xh.analyses.clear()
    xh.extras.clear()
    counts = {"analyze": 0, "forward": 0}
    real = uniformer.explain.analyze

    def analyze(*args, **kwargs):
        counts["analyze"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(uniformer.explain, "analyze", analyze)
    model = models.get_model(MODEL).model
    handle = model.stages[0].downsample.register_forward_pre_hook(
        lambda *_: counts.__setitem__("forward", counts["forward"] + 1))
    yield counts
    handle.remove()


def test_first_click_runs_the_network_once_then_sliders_only_redraw(photo, counted):
    canvas, hint, state = xh.prepare_image(photo, MODEL)
    assert canvas.size == (451, 300) and "Click a point" in hint and state["point"] is None
    assert counted == {"analyze": 0, "forward": 0}

    out = xh.click(state, 8, 0, _select(300, 120))
    state, view = out[0], xh.ExplainView(*out[1:9])
    assert counted == {"analyze": 1, "forward": 2}  # captured forward + the stage-2 ERF of the clicked token
    assert state["point"] == [300, 120]
    assert view.canvas.size == (451, 300) and len(view.local_vs_global) == 3
    assert "stage 3 \u00b7 block 1 (global)" in view.info and "S3 (5, 10)" in view.info
    assert view.erf is not None and view.kernels_plot is not None and len(view.rollout) == 6

    started = time.perf_counter()
    for layer, head in [(1, 0), (7, 2), (9, 5), (18, 8), (12, 0), (18, 99)]:
        redrawn = xh.ExplainView(*xh.rerender(state, layer, head))
        assert redrawn.canvas.size == (451, 300)
    per_move = (time.perf_counter() - started) / 6
    assert counted == {"analyze": 1, "forward": 2}, "slider moves must not run the network"
    assert per_move < 2.0  # generous: ~0.1 s on an idle CPU core
    assert "head 5 of 5" in xh.ExplainView(*xh.rerender(state, 15, 5)).info
    assert "mean over heads" in xh.ExplainView(*xh.rerender(state, 18, 99)).info  # no such head: the mean

    xh.click(state, 8, 0, _select(300, 121))  # same stage-2 token: everything cached
    assert counted == {"analyze": 1, "forward": 2}
    xh.click(state, 8, 0, _select(150, 200))  # another token: only its ERF runs (stages 1-2)
    assert counted == {"analyze": 1, "forward": 3}


def test_a_layer_with_fewer_heads_clamps_the_head_in_the_same_event(photo, counted):
    """Layer 16 head 3, then layer 2 (one channel group in stage 1 of S): the event that sets the
    head slider's new range sets its value too, and the views show that head (issue 20)."""
    _, _, state = xh.prepare_image(photo, MODEL)
    out = xh.click(state, 16, 3, _select(300, 120))
    state, head = out[0], out[-1]
    assert head["value"] == 3 and head["maximum"] == 8
    assert "head 3 of 8" in xh.ExplainView(*out[1:9]).info
    slider, *view = xh.layer_changed(state, 2, 3)
    assert slider["maximum"] == 1 and slider["value"] == 1  # clamped with its range, not after
    assert "stage 1 \u00b7 block 2" in xh.ExplainView(*view).info and "head 1 of 1" in xh.ExplainView(*view).info
    slider, *view = xh.layer_changed(state, 16, 1)  # and later layer changes work
    assert slider["maximum"] == 8 and slider["value"] == 1 and "head 1 of 8" in xh.ExplainView(*view).info
    assert all(v == gr.skip() for v in xh.layer_changed({**state, "point": None}, 2, 3))  # before any click
    out = xh.click(state, 2, 7, _select(300, 120))  # a click clamps too
    assert out[-1]["value"] == 1 and "head 1 of 1" in xh.ExplainView(*out[1:9]).info


def test_clicks_outside_the_crop_and_bad_files_give_clear_errors(photo, counted, tmp_path):
    _, _, state = xh.prepare_image(photo, MODEL)
    with pytest.warns(UserWarning, match="outside the centre crop"):  # a warning keeps the picture clickable
        assert all(v is gr.skip() or v == gr.skip() for v in xh.click(state, 8, 0, _select(5, 150)))  # x0 ~ 94
    assert xh.click(state, 8, 0, _select(225, 150))[0]["point"] == [225, 150]  # still serving
    bad = make_bad_images(tmp_path, photo)
    for kind in ("empty", "text", "truncated"):
        with pytest.raises(gr.Error, match="cannot be used as an image"):
            xh.prepare_image(str(bad[kind]), MODEL)
    with pytest.raises(gr.Error, match="No image"):
        xh.click({}, 8, 0, _select(1, 1))
    assert xh.prepare_image(None, MODEL)[2] == {}
    assert all(v is gr.skip() or isinstance(v, dict) for v in xh.rerender({}, 8, 0))  # before any click


def test_large_photos_are_shown_scaled_and_clicks_mapped_back(tmp_path, counted):
    big = tmp_path / "big.jpg"
    Image.open(write_examples()["astronaut"]).resize((1200, 900)).save(big)
    canvas, _, state = xh.prepare_image(str(big), MODEL)
    assert canvas.size == (xh.MAX_DISPLAY_SIDE, 420)  # long side scaled to the display size
    out = xh.click(state, 8, 0, _select(280, 210))  # the display centre
    assert "**Click** (601, 451) of the 1200\u00d7900 image" in out[2]  # (280.5 * 1200 / 560, 210.5 * 900 / 420)
    assert "S3 (7, 7)" in out[2]  # the centre token of the 14 x 14 grid
    assert out[1].size == (xh.MAX_DISPLAY_SIDE, 420)


def test_export_holds_what_is_shown(photo, counted):
    _, _, state = xh.prepare_image(photo, MODEL)
    state = xh.click(state, 10, 2, _select(200, 150))[0]
    png, js = xh.export(state, 10, 2)
    assert Image.open(png).size[0] > 600
    payload = json.loads(open(js).read())
    assert payload["model"] == MODEL and payload["shown"]["layer"] == "stages.2.blocks.2.mhra"
    assert payload["shown"]["head"] == 1 and len(payload["shown"]["map"]) == 14
    assert payload["click"]["units"] == "original-image pixels"
    assert [p["kind"] for p in payload["local_vs_global"]] == ["local", "global", "global"]
    assert payload["attention_distance"]["units"] == "model-input pixels"
    assert len(payload["rollout"]["class_map"]) == 14 and len(payload["top5"]) == 5
    with pytest.raises(gr.Error, match="Click a point"):
        xh.export({**state, "point": None}, 10, 2)


def test_cam_view_and_class_choices(photo, counted):
    _, _, state = xh.prepare_image(photo, MODEL)
    choices = xh.class_choices(state)["choices"]
    assert choices[0] == ("top class", -1) and len(choices) == 6
    first = xh.cam_view(state, "EigenCAM", "stage 3", -1)
    assert first.image.size == (451, 300) and "EigenCAM" in first.caption and "stage 3" in first.caption
    assert "cached" in xh.cam_view(state, "EigenCAM", "stage 3", -1).caption
    assert f"class {choices[2][1]}" in xh.cam_view(state, "GradCAM", "stage 4", choices[2][1]).caption


def test_light_model_hourglass_layers_are_explained(photo):
    _, _, state = xh.prepare_image(photo, "uniformer_xxs_128_in1k")
    out = xh.click(state, 3, 0, _select(225, 150))
    state = out[0]
    view = xh.ExplainView(*xh.rerender(state, 10, 0))  # a stage-3 hourglass block
    assert "(global, hourglass)" in view.info
    assert len(view.local_vs_global) == 3 and len(view.rollout) == 6  # stage 2 + stages 3, 4; rollout x2 + PCA
    png, js = xh.export(state, 10, 0)
    shown = json.loads(open(js).read())["shown"]
    # 8 x 8 grid at 128 px
    assert shown["kind"] == "global" and "hourglass" in shown["label"] and len(shown["map"]) == 8


def test_explain_caches_compute_each_key_once_across_threads():
    cache = LRUCache(max_items=2)
    calls = []
    barrier = threading.Barrier(4)

    def compute():
        calls.append(1)
        time.sleep(0.05)
        return "value"

    def ask():
        barrier.wait()
        assert cache.get_or_compute("k", compute)[0] == "value"

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    for key in "abc":
        cache.get_or_compute(key, lambda: key)
    assert len(cache) == 2 and cache.get("k") is None and cache.get("c") == "c"
    heavy = LRUCache(max_items=10, max_bytes=100, weigh=len)
    for key, value in (("a", "x" * 60), ("b", "x" * 30), ("c", "x" * 50), ("d", "x" * 500)):
        heavy.get_or_compute(key, lambda v=value: v)
        if key == "c":
            assert heavy.get("a") is None and heavy.get("b") and heavy.get("c")  # 60 + 30 + 50 > 100
    assert len(heavy) == 1 and heavy.get("d")  # over the budget alone: the newest stays
