"""The fastest faithful path, chosen from a measured table (issue 22): the selection rule, the
shipped table, the prepared modules' outputs, and the app's use of it (bf16 weights stored once
in the model cache and counted in its budget, ONNX Runtime only once its export is cached, the
details line naming the path)."""
from __future__ import annotations


import pytest
import torch

import uniformer
import uniformer.precision as precision
import uniformer.runtime.select as select
from uniformer.runtime.select import PATHS, PathChoice, load_table, model_family, prepare_path, select_path

TINY = {"depths": (1, 1, 1, 1), "dims": (32, 64, 128, 256)}

TABLE = {"cpu-bf16": {"image": {"1": {"eager": 1.0, "fused": 1.05, "onnxruntime": 1.3, "bf16-weights": 0.9},
                                "16": {"eager": 1.0, "fused": 1.02, "onnxruntime": 1.2, "bf16-weights": 2.4}},
                      "light": {"1": {"eager": 1.0, "fused": 0.98, "onnxruntime": 0.95, "bf16-weights": 0.6}}},
         "cpu": {"image": {"1": {"eager": 1.0, "onnxruntime": 1.25, "bf16-weights": 3.0}}}}


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-bf16"])
def native(request, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ("avx512_bf16",) if request.param else ())
    return request.param


def test_model_families():
    assert model_family("uniformer_small_in1k") == model_family("uniformer_large_ls_tl_224") == "image"
    assert model_family("uniformer_xxs_160_in1k") == model_family("uniformer_xxs_digits") == "light"
    assert model_family("uniformer_small_k400_16x8") == "video"
    assert model_family("uniformer_xxs16_160_k400") == "video-light"
    assert model_family("uniformer_small_hybrid14_backbone") == model_family("upernet_global_small") == "dense"
    assert model_family(uniformer.create_model("uniformer_small_in1k", **TINY)) == "image"


def test_selection_takes_the_fastest_allowed_path_and_never_one_slower_than_eager(native):
    s = "uniformer_small_in1k"
    key = "cpu-bf16" if native else "cpu"
    auto1 = select_path(s, "cpu", "auto", 1, table=TABLE)
    assert auto1 == PathChoice("onnxruntime", "fp32", TABLE[key]["image"]["1"]["onnxruntime"], "measured")
    auto16 = select_path(s, "cpu", "auto", 16, table=TABLE)  # nearest measured batch: 16
    # bf16 is chosen by 'auto' only where the CPU computes it natively (the 'cpu' row's 3.0 is never taken)
    assert auto16.path == ("bf16-weights" if native else "onnxruntime")
    assert select_path(s, "cpu", "auto", 12, table=TABLE) == auto16
    assert select_path(s, "cpu", "fp32", 16, table=TABLE).path == "onnxruntime"  # fp32 asked: no bf16 path
    assert select_path(s, "cpu", "bf16", 1, table=TABLE).path == "bf16-weights"  # bf16 asked: stored weights
    assert select_path(s, "cpu", "auto", 1, table=TABLE, exclude=("onnxruntime",)).path == (
        "fused" if native else "eager")
    # light models on the native-bf16 CPU: every measured path is slower than eager -> eager fp32
    assert select_path("uniformer_xxs_160_in1k", "cpu", "auto", 1, table=TABLE) == PathChoice("eager", "fp32")
    # unmeasured family / device: eager
    assert select_path("uniformer_small_k400_16x8", "cpu", "auto", 1, table=TABLE).path == "eager"
    assert select_path(s, "cpu", "auto", 1, table={}).path == "eager"
    assert select_path(s, "cpu", "fp16", table=TABLE) == PathChoice("eager", "fp16")
    with pytest.raises(ValueError, match="precision must be"):
        select_path(s, "cpu", "int8", table=TABLE)


def test_shipped_table_is_valid_and_its_choices_are_measured_faster_than_eager():
    table = load_table()
    assert table, "uniformer/runtime/paths.json ships with the package"
    for device, families in table.items():
        assert device in ("cpu", "cpu-bf16", "cuda")
        for family, batches in families.items():
            assert family in ("image", "light", "video", "video-light", "dense")
            for batch, speeds in batches.items():
                assert int(batch) >= 1 and set(speeds) <= set(PATHS) and all(v > 0 for v in speeds.values())
    for name in ("uniformer_small_in1k", "uniformer_xxs_160_in1k", "uniformer_small_k400_16x8"):
        for prec in ("auto", "fp32"):
            choice = select_path(name, "cpu", prec)
            assert choice.path == "eager" or choice.speedup > 1


def test_a_bad_table_file_is_refused(tmp_path):
    bad = tmp_path / "paths.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a path table"):
        load_table(bad)
    assert load_table(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("path", ["eager", "fused", "bf16-weights"])
def test_prepared_paths_answer_as_eager(path):
    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_small_in1k", **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    choice = PathChoice(path, select.PATH_PRECISION[path])
    run = prepare_path(model, choice)
    assert (run is model) == (path == "eager")
    with torch.inference_mode():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=choice.precision == "bf16"):
            got = run(x).float()
    tol = 0.1 if choice.precision == "bf16" else 1e-5
    assert ((got - ref).abs().max() / ref.abs().max()).item() < tol
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the model itself is unchanged
    with pytest.raises(ValueError, match="unknown path"):
        prepare_path(model, PathChoice("tensorrt", "fp32"))


def test_app_stores_bf16_weights_once_and_counts_them(monkeypatch):
    from app import models

    monkeypatch.setattr(select, "load_table", lambda *a: {"cpu-bf16": {"light": {"1": {"bf16-weights": 1.5}}},
                                                          "cpu": {"light": {"1": {"bf16-weights": 1.5}}}})
    models.model_cache.cache_clear()
    try:
        loaded, run, choice = models.get_fast_model("uniformer_xxs_digits", "bf16")
        assert choice.path == "bf16-weights" and choice.precision == "bf16" and run is not loaded.model
        assert next(m for m in run.modules() if isinstance(m, torch.nn.Linear)).weight.dtype == torch.bfloat16
        again = models.get_fast_model("uniformer_xxs_digits", "bf16")[1]
        assert again is run  # stored once
        cache = models.model_cache()
        assert ("fast", "uniformer_xxs_digits", "bf16-weights", "cpu") in cache.keys()
        fp32_bytes = models.module_footprint([loaded.model])["cpu"]
        assert models.module_footprint([loaded.model, run])["cpu"] > fp32_bytes  # the copy is counted
        # fp32 asked: no bf16 path is measured faster for fp32, so eager runs
        assert models.get_fast_model("uniformer_xxs_digits", "fp32")[1] is loaded.model
    finally:
        models.model_cache.cache_clear()


def test_app_uses_onnxruntime_only_once_its_export_is_cached(monkeypatch, tmp_path):
    """The app never exports while it serves: without a cached export the next fastest path runs;
    once the export is in the cache (here made by the library's own ONNX Runtime path, as an
    operator's warm-up would), a restarted app runs ONNX Runtime, whose answers equal eager's."""
    from app import models
    from uniformer.inference import predict_image
    from uniformer.runtime.select import onnx_export_cached

    monkeypatch.setenv("UNIFORMER_CACHE", str(tmp_path / "cache"))
    table = {"light": {"1": {"onnxruntime": 1.6, "fused": 1.1}}}
    monkeypatch.setattr(select, "load_table", lambda *a: {"cpu-bf16": table, "cpu": table})
    models.model_cache.cache_clear()
    try:
        loaded, run, choice = models.get_fast_model("uniformer_xxs_digits", "fp32")
        assert choice.path == "fused" and not onnx_export_cached(loaded.model)
        image = torch.rand(64, 64, 3).mul(255).to(torch.uint8).numpy()
        ort = prepare_path(loaded.model, PathChoice("onnxruntime", "fp32"))
        predict_image(ort, image, topk=3)  # exports into the cache
        assert onnx_export_cached(loaded.model)
        models.model_cache.cache_clear()  # a restart
        loaded, run, choice = models.get_fast_model("uniformer_xxs_digits", "fp32")
        assert choice.path == "onnxruntime" and getattr(run, "runtime", None) == "onnxruntime"
        got = predict_image(run, image, topk=3)
        ref = predict_image(loaded.model, image, topk=3)
        assert [c.index for c in got.topk] == [c.index for c in ref.topk]
        assert max(abs(a.probability - b.probability) for a, b in zip(got.topk, ref.topk)) < 1e-4
    finally:
        models.model_cache.cache_clear()


def test_image_tab_details_say_which_path_ran(monkeypatch):
    from app import models
    from app.handlers import classify_image

    monkeypatch.setattr(select, "load_table", lambda *a: {})
    models.model_cache.cache_clear()
    try:
        image = torch.rand(96, 96, 3).mul(255).to(torch.uint8).numpy()
        result = classify_image(image, "uniformer_xxs_digits", "fp32")
        assert "**Path:** eager PyTorch, fp32 (no faster path measured)" in result.details
    finally:
        models.model_cache.cache_clear()
