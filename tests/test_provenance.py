"""uniformer.explain.provenance and the figure helpers the notebooks use: the UNTRAINED mark in titles,
one short missing-checkpoint note, load_or_fallback offline (no network, empty caches), colour bars under
overlays, token heat maps with integer ticks, and the spread of the keep-ratio timings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import uniformer
import uniformer.explain as E
from uniformer.hub import WeightsInfo


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty caches: no official checkpoint can be had."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("UNIFORMER_CACHE", str(tmp_path / "uniformer"))
    monkeypatch.delenv("UNIFORMER_CHECKPOINT_DIR", raising=False)


def test_weights_title_marks_only_untrained_weights():
    assert E.weights_title("attention", WeightsInfo("untrained")) == f"attention [{E.UNTRAINED_MARK}: not meaningful]"
    for source in ("hub", "drive", "local", "project"):
        assert E.weights_title("attention", WeightsInfo(source)) == "attention"


def test_mark_figure_sets_the_plotly_title():
    fig = E.heatmap_figure(np.ones((2, 2)), "a map")
    assert E.mark_figure(fig, WeightsInfo("untrained")) is fig and E.UNTRAINED_MARK in fig.layout.title.text
    assert fig.layout.title.text.startswith("a map")
    assert E.mark_figure(E.heatmap_figure(np.ones((2, 2)), "a map"), WeightsInfo("hub")).layout.title.text == "a map"


@pytest.mark.parametrize("name", ["uniformer_small_in1k", "upernet_global_small", "mask_rcnn_1x_hybrid_small",
                                  "cascade_mask_rcnn_3x_ms_hybrid_small"])
def test_missing_checkpoint_note_is_one_short_line(name):
    note = E.missing_checkpoint_note(name)
    assert "\n" not in note and len(note) < 260 and f"python -m uniformer download {name}" in note
    assert "UNTRAINED" in note and note.count(name) == 2
    assert "uniformer_xxs_digits" in E.missing_checkpoint_note(name, "uniformer_xxs_digits")


def test_load_or_fallback_offline_says_so_and_runs_the_fallback(offline):
    model, note = E.load_or_fallback("uniformer_xxs_160_in1k")
    assert not model.weights_info.trained and note == E.missing_checkpoint_note("uniformer_xxs_160_in1k")
    model, note = E.load_or_fallback("uniformer_xxs_160_in1k", fallback="uniformer_xxs_digits")
    assert model.model_name == "uniformer_xxs_digits" and model.weights_info.source == "project"
    assert note == E.missing_checkpoint_note("uniformer_xxs_160_in1k", "uniformer_xxs_digits")
    model, note = E.load_or_fallback("uniformer_xxs_160_in1k", pretrained=False)   # nothing asked: no note
    assert note is None and not model.weights_info.trained
    model, note = E.load_or_fallback("uniformer_xxs_digits")                     # shipped: loads offline
    assert note is None and model.weights_info.source == "project"


def test_load_or_fallback_raises_other_checkpoint_errors(offline, tmp_path, monkeypatch):
    bad = tmp_path / "ckpt"
    bad.mkdir()
    (bad / "uniformer_xxs_160_in1k.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("UNIFORMER_CHECKPOINT_DIR", str(bad))
    with pytest.raises(uniformer.CheckpointError) as info:
        E.load_or_fallback("uniformer_xxs_160_in1k")
    assert not isinstance(info.value, uniformer.CheckpointNotAvailableError)


def test_colorbar_image_runs_from_low_to_high_colour():
    bar = E.colorbar_image("Inferno", "0", "max", "weight / max", width=200)
    assert bar.mode == "RGB" and bar.width == 216
    row = np.asarray(bar)[20 + 8]                                        # a row through the ramp
    first, last = row[8 + 2].astype(int), row[8 + 197].astype(int)
    np.testing.assert_allclose(first, E.colorize(np.zeros((1, 1), np.float32), "Inferno")[0, 0], atol=12)
    np.testing.assert_allclose(last, E.colorize(np.ones((1, 1), np.float32), "Inferno")[0, 0], atol=12)


def test_token_heat_maps_have_integer_ticks_and_axis_titles():
    for cells in (4, 14, 56):
        fig = E.heatmap_figure(np.random.rand(cells, cells), "t", value_name="attention")
        for axis in (fig.layout.xaxis, fig.layout.yaxis):
            assert axis.tickmode == "linear" and axis.tick0 == 0 and axis.dtick == max(1, -(-cells // 10))
            assert "token" in axis.title.text
        assert fig.data[0].colorbar.title.text == "attention"


def test_keep_ratio_sweep_reports_the_spread_of_its_repeats():
    from uniformer.explain.shrinking import keep_ratio_sweep

    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    x = torch.randn(1, 3, 64, 64)
    for p in keep_ratio_sweep(model, x, ratios=(1.0, 0.5), repeats=3):
        lo, hi = p.latency_range_ms
        assert 0 < lo <= p.latency_ms <= hi
