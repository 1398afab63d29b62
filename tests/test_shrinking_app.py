"""The "Token shrinking" tab without a browser: cached traces, layer overlays, chart data, keep-ratio
steering, bad uploads, weights banner and layout."""
from __future__ import annotations

import dataclasses
import shutil
import threading
from contextlib import contextmanager

import gradio as gr
import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import torch
from appfiles import make_bad_images
from hubcache import add_to_hub_cache, official_state_dict

from app import handlers, models
from app.cache import LRUCache
from app import shrinking_handlers as sh
from app.examples import write_examples
from uniformer.data import eval_transform, load_image
from uniformer.hub import WeightsInfo
from uniformer.explain import input_geometry
from uniformer.explain.shrinking import FUSED, KEPT, token_state_map, tokens_per_layer
from uniformer.models.light import UniFormerLight

MODEL = sh.DEFAULT_LIGHT_MODEL
LIGHT_HUB_REPO, LIGHT_HUB_FILE = "Andy1621/uniformer_light", "uniformer_xxs_160_in1k.pth"
REPEATS = 1  # latency medians are not what these tests check; keep the CPU work small


@pytest.fixture(scope="module", autouse=True)
def light_hub_cache(tmp_path_factory):
    """The app sees an offline Hub cache holding synthetic official weights of MODEL."""
    hf_home = tmp_path_factory.mktemp("hf_home")
    add_to_hub_cache(hf_home, LIGHT_HUB_REPO, LIGHT_HUB_FILE, official_state_dict("light_xxs"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        mp.delenv(models.CHECKPOINT_DIR_ENV, raising=False)
        models.clear_cache()
        yield
    models.clear_cache()


@pytest.fixture
def cache():
    return LRUCache(max_items=48)


@pytest.fixture(scope="module")
def photo():
    return str(write_examples()["chelsea"])


@pytest.fixture(scope="module")
def warm_cache(light_hub_cache, photo):
    """A cache already holding the photo's runs at every keep ratio (for tests that only read them)."""
    cache = LRUCache(max_items=48)
    sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=cache)
    return cache


@contextmanager
def count_forwards(model_name: str = MODEL):
    """Count the network's forwards (every forward, traced or not, starts with the stem) -> [count]."""
    count = [0]
    model = models.get_model(model_name).model
    handle = model.stages[0].downsample.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        yield count
    finally:
        handle.remove()


def _pixels(image) -> np.ndarray:
    return np.asarray(image).astype(int)


def test_layer_slider_and_keep_ratio_rerender_from_the_cache_without_a_forward(photo, cache):
    with count_forwards() as forwards:
        view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=cache)
        ran = 1 + len(sh.KEEP_RATIOS) * REPEATS  # a warm-up, then each keep ratio of Table 23
        assert forwards[0] == ran
        n_layers = 8 + 2
        assert view.layer == 2 and sh.layer_range(view.state, REPEATS, cache) == gr.update(minimum=1, maximum=n_layers)
        assert view.state.model_name == MODEL and view.state.keep_ratio == 0.5
        assert view.overlay.size == load_image(photo).size  # drawn on the photo itself (512 px: not downscaled)

        overlays = {}
        for layer in range(1, n_layers + 1):
            shown = sh.show_layer(view.state, layer, cache=cache)
            overlays[layer] = _pixels(shown.overlay)
            assert f"**Layer {layer} of {n_layers}: stage {3 if layer <= 8 else 4}" in shown.caption
            assert shown.chart.layout.shapes[0].x0 == layer - 1.5  # the chart highlights the layer
        assert forwards[0] == ran  # moving the slider ran nothing
        run = cache.get((view.state.digest, MODEL, 0.5))
        for a, b in [(1, 2), (8, 9), (9, 10)]:
            if set(run.trace[a - 1].kept[0].tolist()) != set(run.trace[b - 1].kept[0].tolist()):
                assert np.abs(overlays[a] - overlays[b]).sum() > 0, f"layers {a} and {b} look the same"
        assert np.abs(overlays[1] - overlays[2]).sum() > 0  # layer 1 keeps everything, layer 2 half
        assert "all 100 kept" in sh.show_layer(view.state, 1, cache=cache).caption

        # another keep ratio: top-5, details and table change, still no forward (the run traced every ratio)
        quarter = sh.change_keep_ratio(view.state, 0.25, 3, cache=cache)
        assert forwards[0] == ran
        assert quarter.state.keep_ratio == 0.25 and "**Keep ratio 0.25**" in quarter.details
        assert "50 kept" in view.caption and "25 kept" in quarter.caption
        assert list(quarter.sweep["keep ratio"]) == ["1", "0.8", "0.6", "0.5", "0.4", "0.25 \u25c0"]
        assert np.abs(_pixels(quarter.overlay) - _pixels(sh.show_layer(view.state, 3, cache=cache).overlay)).sum() > 0

        # the same photo from another path (a new upload) is the same cache entry
        copy = shutil.copyfile(photo, write_examples()["chelsea"].with_name("chelsea_copy.png"))
        again = sh.run_shrinking(str(copy), MODEL, 0.5, 4, repeats=REPEATS, cache=cache)
        assert forwards[0] == ran and again.state.digest == view.state.digest


def test_caption_says_when_every_token_scored_the_same(photo, warm_cache):
    """Untrained weights (a zero score token) attend uniformly: the caption says the choice is arbitrary."""
    view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    run = warm_cache.get((view.state.digest, MODEL, 0.5))
    assert "scored the same" not in sh.layer_caption(run, 2)  # synthetic official weights: real ranking
    entry = run.trace[1]
    tied = dataclasses.replace(entry, scores=torch.full_like(entry.scores, 0.01))
    run_tied = dataclasses.replace(run, trace=(run.trace[0], tied, *run.trace[2:]))
    assert "**All tokens scored the same**" in sh.layer_caption(run_tied, 2)


def test_chart_data_equals_tokens_per_layer(photo, warm_cache):
    view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    model = models.get_model(MODEL).model
    x = eval_transform(model.pretrained_cfg)(load_image(photo))[None]
    with torch.no_grad():
        _, trace = model.forward_trace(x, keep_ratio=0.5)
    rows = tokens_per_layer(trace)
    kept, fused, processed = view.chart.data
    assert list(kept.y) == [r["kept"] for r in rows]
    assert list(fused.y) == [r["fused"] for r in rows]
    assert list(processed.y) == [r["processed"] for r in rows] == [101] + [52] * 7 + [14] * 2
    assert list(kept.x) == [f"S{r['stage']}\u00b7B{r['block'] + 1}" for r in rows]
    assert view.chart.layout.barmode == "stack"
    # the cached trace is the trace of the forward: same kept tokens
    run = warm_cache.get((view.state.digest, MODEL, 0.5))
    for mine, ref in zip(run.trace, trace):
        assert torch.equal(mine.kept, ref.kept)


def test_keep_ratio_one_shows_no_fused_token(photo, warm_cache):
    view = sh.run_shrinking(photo, MODEL, 1.0, 5, repeats=REPEATS, cache=warm_cache)
    assert all(v == 0 for v in view.chart.data[1].y)
    run = warm_cache.get((view.state.digest, MODEL, 1.0))
    shown = _pixels(run.image)
    for layer, t in enumerate(run.trace, 1):
        assert (token_state_map(t) == KEPT).all() and not (token_state_map(t) == FUSED).any()
        overlay = _pixels(sh.show_layer(view.state, layer, cache=warm_cache).overlay)
        for cx, cy in run.geometry.token_centers(t.grid[-2:]):  # no token is darkened
            assert np.array_equal(overlay[int(cy), int(cx)], shown[int(cy), int(cx)])
    assert "nothing is fused" in view.caption
    assert "**Keep ratio 1** \u00b7 **Latency:**" in view.details
    table = view.sweep
    assert list(table["tokens processed"]) == sorted(table["tokens processed"], reverse=True)
    assert table["tokens processed"][0] == 101 * 8 + 26 * 2 and (table["latency (ms)"] > 0).all()
    assert len(view.label) == handlers.TOPK and list(view.label.values()) == sorted(view.label.values(), reverse=True)


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty.jpg is empty (0 bytes)"),
    ("truncated", "truncated or corrupt"),
    ("text", "notes.jpg is not an image file"),
    ("bomb", "bomb.png is far too large"),
])
def test_bad_image_gives_a_clear_error_and_the_next_request_works(tmp_path, photo, cache, warm_cache, kind,
                                                                   message):
    bad = make_bad_images(tmp_path, photo)[kind]
    with pytest.raises(gr.Error) as info:
        sh.run_shrinking(str(bad), MODEL, 0.5, 2, repeats=REPEATS, cache=cache)
    assert info.value.message.startswith("This file cannot be used as an image: ") and message in info.value.message
    assert len(cache) == 0  # failures are not cached
    view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    assert view.overlay is not None and len(view.label) == handlers.TOPK


def test_no_image_and_nothing_shown_yet(cache):
    with pytest.raises(gr.Error, match="No image yet"):
        sh.run_shrinking(None, MODEL, 0.5, 2, cache=cache)
    assert sh.show_layer(None, 3, cache=cache) == sh.LayerView(None, "", None)
    nothing = sh.change_keep_ratio(None, 0.25, 3, cache=cache)
    assert nothing.overlay is None and nothing.label is None and nothing.state is None and nothing.caption == ""
    assert list(nothing.sweep.columns) == list(sh.SWEEP_COLUMNS) and nothing.sweep.empty


def test_cache_is_bounded_and_dropped_runs_are_recomputed(photo):
    small = LRUCache(max_items=2)
    with count_forwards() as forwards:
        view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=small)
        assert len(small) == 2  # only the last two of six ratios stay
        assert forwards[0] == 1 + 6
        shown = sh.show_layer(view.state, 3, repeats=REPEATS, cache=small)  # 0.5 was dropped: traced again
        assert forwards[0] == 7 + 2 and shown.overlay is not None  # warm-up + one timed forward
        sh.show_layer(view.state, 4, repeats=REPEATS, cache=small)
        assert forwards[0] == 9


def test_other_weights_never_see_an_old_trace(photo, warm_cache, monkeypatch):
    """A trace is keyed by the weights that made it (app.models.weights_key): after the shared weights
    were replaced (a download), the same photo runs the network again."""
    view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    assert warm_cache.get((view.state.digest, MODEL, 0.5)) is not None
    monkeypatch.setitem(models._GENERATION, MODEL, 1)  # what load_official records
    with count_forwards() as forwards:
        again = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    assert forwards[0] == 1 + len(sh.KEEP_RATIOS) * REPEATS and again.state.digest == view.state.digest
    assert warm_cache.get((view.state.digest, f"{MODEL}#1", 0.5)) is not None


def test_concurrent_requests_give_the_sequential_results(cache):
    examples = write_examples()
    images = [str(examples["coffee"]), str(examples["astronaut"])]
    sequential = [sh.run_shrinking(im, MODEL, 0.5, 2, repeats=REPEATS, cache=LRUCache(max_items=48)) for im in images]
    results = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        results[i] = sh.run_shrinking(images[i], MODEL, 0.5, 2, repeats=REPEATS, cache=cache)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, s in zip(results, sequential):
        assert r.label == s.label and np.array_equal(_pixels(r.overlay), _pixels(s.overlay))
    assert len(cache) == 2 * len(sh.KEEP_RATIOS)


def test_large_photos_are_shown_downscaled_with_matching_geometry(tmp_path, cache):
    big = tmp_path / "big.png"
    load_image(write_examples()["astronaut"]).resize((1600, 1200)).save(big)
    view = sh.run_shrinking(str(big), MODEL, 0.5, 2, repeats=REPEATS, cache=cache)
    assert max(view.overlay.size) == sh.MAX_DISPLAY_SIDE and view.overlay.size == (800, 600)
    run = cache.get((view.state.digest, MODEL, 0.5))
    full = input_geometry((1600, 1200), models.get_model(MODEL).model.pretrained_cfg)  # what the model saw
    np.testing.assert_allclose(run.geometry.crop_box(), np.array(full.crop_box()) / 2, atol=1.0)  # display pixels


def test_details_name_a_local_file_never_its_server_path(photo, warm_cache, tmp_path):
    view = sh.run_shrinking(photo, MODEL, 0.5, 2, repeats=REPEATS, cache=warm_cache)
    run = warm_cache.get((view.state.digest, MODEL, 0.5))
    local = dataclasses.replace(run, weights=WeightsInfo("local", path=str(tmp_path / "mine.pth")))
    details = sh.run_details(local)
    assert "**Weights:** local checkpoint file mine.pth" in details and str(tmp_path) not in details


def test_weights_line_and_untrained_warning_for_light_models(tmp_path, monkeypatch):
    status = handlers.model_status(MODEL)
    assert status == (f"**Weights:** official file \u00b7 official Hub checkpoint {LIGHT_HUB_REPO}/{LIGHT_HUB_FILE}",
                      "")
    drive_only = handlers.model_status("uniformer_xs_192_in1k").banner
    assert "untrained random weights: its predictions are meaningless" in drive_only and "Google Drive" in drive_only


def test_light_model_choices_and_layout():
    names = [n for _, n in sh.light_model_choices()]
    table11 = {"uniformer_xs_192_in1k", "uniformer_xs_224_in1k", "uniformer_xxs_128_in1k", "uniformer_xxs_160_in1k",
               "uniformer_xxs_192_in1k", "uniformer_xxs_224_in1k"}
    assert table11 <= set(names) and "uniformer_small_in1k" not in names
    assert all(issubclass(models.uniformer.get_entry(n).build, UniFormerLight) for n in names)
    assert all(models.uniformer.get_entry(n).task == "image-classification" for n in names)
    assert [r for _, r in sh.keep_ratio_choices()] == [1.0, 0.8, 0.6, 0.5, 0.4, 0.25]

    from app.builder import build_app

    config = build_app().get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    assert [v for _, v in by_id["shrink-model"]["props"]["choices"]] == names
    assert by_id["shrink-model"]["props"]["value"] == MODEL
    assert by_id["shrink-ratio"]["props"]["value"] == 0.5
    assert by_id["shrink-image"]["type"] == "image" and by_id["shrink-layer"]["type"] == "slider"
    assert by_id["shrink-chart"]["type"] == "plot"
    assert "shrink" in {d.get("api_name") for d in config["dependencies"]}
