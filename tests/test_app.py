"""The Gradio app without a browser: handlers, weights policy, model cache, bad uploads, layout."""
from __future__ import annotations

import base64
import threading
import time

import gradio as gr
import huggingface_hub.constants as hf_constants
import pytest
import torch
from appfiles import SMALL_HUB_DESCRIPTION, SMALL_HUB_FILE, SMALL_HUB_REPO, make_bad_images, make_hub_home
from hubcache import official_state_dict

from app import handlers, models
from app.components import RawImage
from app.examples import EXAMPLE_FILES, EXAMPLES_CREDIT, write_examples
from gradio.data_classes import ImageData
from uniformer.data import load_image
from uniformer.inference import ClassScore

MODEL = models.DEFAULT_MODEL


def _use_hub_cache(mp: pytest.MonkeyPatch, hf_home) -> None:
    """Point huggingface_hub (which read HF_HOME at import) at ``hf_home``, offline, with no local
    checkpoint folder, and start from an empty model cache."""
    mp.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    mp.delenv(models.CHECKPOINT_DIR_ENV, raising=False)
    models.clear_cache()


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """The app sees an offline Hub cache holding synthetic official weights of MODEL."""
    with pytest.MonkeyPatch.context() as mp:
        _use_hub_cache(mp, make_hub_home(tmp_path_factory.mktemp("hf_home")))
        yield
    models.clear_cache()


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """The app sees an empty offline Hub cache: no weights can be had."""
    _use_hub_cache(monkeypatch, tmp_path / "hf_home")
    yield
    models.clear_cache()


@pytest.fixture(scope="module")
def photo():
    return str(write_examples()["chelsea"])


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory, photo):
    return make_bad_images(tmp_path_factory.mktemp("bad_images"), photo)


def _assert_top5(result: handlers.ImageResult) -> None:
    assert len(result.label) == 5
    probabilities = list(result.label.values())  # the real probabilities, whatever their size
    if handlers.has_low_scores(result.label):  # near-uniform scores: the names carry them too
        assert handlers.LOW_SCORES_NOTE in result.details
        named = [float(k.rsplit(" \u00b7 ", 1)[1].rstrip(" %")) / 100 for k in result.label]
        assert probabilities == pytest.approx(named, rel=0.05)
    assert all(0 <= p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6
    assert probabilities == sorted(probabilities, reverse=True)
    assert " ms " in result.details and "**Device:** CPU" in result.details


def test_classify_shows_top5_and_the_hub_checkpoint(hub_cache, photo):
    result = handlers.classify_image(photo, MODEL, "fp32")
    _assert_top5(result)
    assert SMALL_HUB_DESCRIPTION in result.details
    status = handlers.model_status(MODEL)
    assert status == (f"**Weights:** official file \u00b7 {SMALL_HUB_DESCRIPTION}", "")


def test_pil_input_and_settings_are_passed_on(hub_cache, photo, monkeypatch):
    _assert_top5(handlers.classify_image(load_image(photo), MODEL, "fp32"))
    seen, real = {}, handlers.predict_image

    def spy(model, image, **kwargs):  # the module the app chose (eager, or a bf16-weights / fused copy) runs
        seen.update(kwargs)
        return real(model, image, **kwargs)

    monkeypatch.setattr(handlers, "predict_image", spy)
    result = handlers.classify_image(photo, MODEL, "bf16")
    assert seen == {"topk": 5, "device": handlers.default_device(), "precision": "bf16"}
    assert "**Path:** " in result.details and "bf16" in result.details


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty.jpg is empty (0 bytes)"),
    ("truncated", "truncated or corrupt"),
    ("text", "notes.jpg is not an image file"),
    ("huge", "huge.png is far too large"),
    ("bomb", "bomb.png is far too large"),
])
def test_bad_image_gives_a_clear_error_and_the_next_request_works(hub_cache, bad_images, photo, kind, message):
    with pytest.raises(gr.Error) as info:
        handlers.classify_image(str(bad_images[kind]), MODEL, "fp32")
    assert info.value.message.startswith("This file cannot be used as an image: ")
    assert message in info.value.message
    _assert_top5(handlers.classify_image(photo, MODEL, "fp32"))


def test_no_image_and_bad_precision_give_clear_errors(hub_cache, photo):
    with pytest.raises(gr.Error, match="No image yet"):
        handlers.classify_image(None, MODEL, "fp32")
    if not torch.cuda.is_available():
        with pytest.raises(gr.Error, match="fp16 autocast needs a CUDA device"):
            handlers.classify_image(photo, MODEL, "fp16")


def test_untrained_fallback_shows_a_visible_warning(empty_hub_cache, photo):
    weights, banner = handlers.model_status(MODEL)
    assert weights == "**Weights:** untrained random weights: predictions are meaningless"
    assert "#ef6c00" in banner  # the orange warning box
    assert "untrained random weights: its predictions are meaningless" in banner
    assert f"{SMALL_HUB_REPO}/{SMALL_HUB_FILE}" in banner and "$UNIFORMER_CHECKPOINT_DIR/" in banner
    assert "LocalEntryNotFoundError" in banner  # the reason, under "Why"
    result = handlers.classify_image(photo, MODEL, "fp32")
    _assert_top5(result)
    assert "untrained random weights: predictions are meaningless" in result.details


def test_untrained_warning_of_a_drive_only_model_names_the_download(empty_hub_cache):
    banner = handlers.model_status("uniformer_small_tl_224").banner
    assert "Google Drive" in banner and "uniformer_small_tl_224.pth" in banner


def test_local_checkpoint_dir_wins_and_bad_files_are_errors_not_crashes(empty_hub_cache, tmp_path, monkeypatch,
                                                                         photo):
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    checkpoint = tmp_path / f"{MODEL}.pth"
    checkpoint.write_bytes(b"")
    weights, banner = handlers.model_status(MODEL)
    assert weights == "**Weights:** none (loading failed)"
    assert "#d32f2f" in banner and "InvalidCheckpointError" in banner and "is empty" in banner
    with pytest.raises(gr.Error, match="could not be loaded: InvalidCheckpointError"):
        handlers.classify_image(photo, MODEL, "fp32")

    torch.save(official_state_dict("image_s"), checkpoint)  # failures are not cached: fixing the file works
    assert handlers.model_status(MODEL) == (f"**Weights:** local file `{MODEL}.pth` ($UNIFORMER_CHECKPOINT_DIR)", "")
    details = handlers.classify_image(photo, MODEL, "fp32").details
    assert f"local checkpoint file {MODEL}.pth" in details and str(tmp_path) not in details  # no server path


def test_mismatching_checkpoint_is_reported(empty_hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    torch.save({"head.weight": torch.zeros(3, 3)}, tmp_path / f"{MODEL}.pth")
    assert "CheckpointMismatchError" in handlers.model_status(MODEL).banner


def test_models_are_loaded_once_even_under_concurrent_requests(monkeypatch):
    calls = []

    def slow_load(name):
        calls.append(name)
        time.sleep(0.2)
        return models.LoadedModel(name, torch.nn.Identity())

    monkeypatch.setattr(models, "load_model", slow_load)
    models.clear_cache()
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(models.get_model("a"))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls == ["a"] and len({id(r) for r in results}) == 1 and len(results) == 4
        assert models.get_model("a") is results[0] and calls == ["a"]
    finally:
        models.clear_cache()


def test_label_scores_keep_duplicate_class_names_apart():
    topk = [ClassScore(134, "crane", 0.5), ClassScore(517, "crane", 0.3), ClassScore(1, "goldfish", 0.1)]
    assert handlers.label_scores(topk) == {"crane (class 134)": 0.5, "crane (class 517)": 0.3, "goldfish": 0.1}


def test_precision_choices_offer_fp16_only_on_cuda():
    assert handlers.precision_choices(torch.device("cpu")) == ["fp32", "bf16"]
    assert handlers.precision_choices(torch.device("cuda")) == ["fp32", "bf16", "fp16"]


def test_raw_image_passes_the_upload_undecoded(bad_images, tmp_path):
    component = RawImage(type="filepath")
    text_file = str(bad_images["text"])
    assert component.preprocess(ImageData(path=text_file, orig_name="notes.jpg")) == text_file
    assert component.preprocess(None) is None
    data_url = "data:image/jpeg;base64," + base64.b64encode(b"not really a jpeg").decode()
    saved = component.preprocess(ImageData(url=data_url, orig_name="webcam.jpg"))
    assert open(saved, "rb").read() == b"not really a jpeg"


def test_examples_are_real_photos_with_credits(tmp_path):
    written = write_examples(tmp_path)
    assert list(written) == [name for name, _, _ in EXAMPLE_FILES]
    for name, path in written.items():
        assert min(load_image(path).size) >= 256 and name in EXAMPLES_CREDIT
    assert write_examples(tmp_path) == written  # reused


def test_build_app_layout():
    from app.builder import build_app

    config = build_app().get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    image = by_id["input-image"]
    assert image["type"] == "image"  # RawImage renders with gr.Image's frontend and props
    assert image["props"]["sources"] == ["upload", "webcam", "clipboard"]
    choices = [value for _, value in by_id["model"]["props"]["choices"]]
    assert choices == [n for n in models.uniformer.list_models(task="image-classification")
                       if not handlers.is_project_model(n)]  # the digits model has its own tab
    assert "uniformer_xxs_digits" not in choices
    assert by_id["model"]["props"]["value"] == MODEL
    assert [value for _, value in by_id["precision"]["props"]["choices"]] == handlers.precision_choices(
        handlers.default_device())
    assert "classify" in {d.get("api_name") for d in config["dependencies"]}


def test_near_uniform_top_k_names_real_percentages_and_keeps_real_probabilities():
    from uniformer.inference import ClassScore

    sure = handlers.label_scores([ClassScore(0, "tabby", 0.9), ClassScore(1, "lynx", 0.05)])
    assert sure == {"tabby": 0.9, "lynx": 0.05} and not handlers.has_low_scores(sure)
    flat = handlers.label_scores([ClassScore(0, "tabby", 0.0014), ClassScore(1, "lynx", 0.0007)])
    assert flat == {"tabby \u00b7 0.14 %": 0.0014, "lynx \u00b7 0.070 %": 0.0007} and handlers.has_low_scores(flat)


def test_project_models_are_named_as_such_and_kept_out_of_the_photo_tabs():
    assert handlers.is_project_model("uniformer_xxs_digits")
    assert handlers.is_project_model("uniformer_xxs_moving_digits")
    assert not handlers.is_project_model("uniformer_small_in1k")
    note = handlers.trained_on_note("uniformer_xxs_moving_digits")
    assert "meaningless" in note and "left, right, up, down" in note
    assert handlers.trained_on_note("uniformer_small_in1k") == ""
    names = [n for _, n in handlers.general_image_model_choices()]
    assert "uniformer_small_in1k" in names and "uniformer_xxs_digits" not in names


def test_is_light_reads_the_config_of_image_video_and_dense_models():
    from uniformer.models.light import is_light

    assert [is_light(n) for n in ("uniformer_xxs_128_in1k", "uniformer_xxs_moving_digits", "fpn_xxs", "mask_rcnn_1x_xs",
                                  "uniformer_small_in1k", "mask_rcnn_1x_hybrid_small", "upernet_global_small")] == \
        [True, True, True, True, False, False, False]
    model = models.uniformer.create_model("uniformer_xxs_digits")
    assert is_light(model) and is_light(model.cfg) and not is_light(object())


def test_numeric_radio_accepts_numbers_and_their_text_and_documents_numbers():
    from gradio.exceptions import Error

    from app.components import NumericRadio

    radio = NumericRadio([("0.5 (default)", 0.5), ("1", 1.0)], value=0.5, label="Keep ratio")
    assert radio.api_info()["type"] == "number" and radio.api_info()["enum"] == [0.5, 1.0]
    assert radio.preprocess("0.5") == 0.5 and radio.preprocess(1) == 1.0 and radio.preprocess(None) is None
    with pytest.raises(Error, match="Keep ratio: '0.3' is not one of"):
        radio.preprocess("0.3")


def test_one_error_helper_words_each_problem_once():
    from app import errors

    assert errors.no_input().message.startswith("No image yet: upload a photo")
    assert errors.no_input().title == "No image"
    assert errors.no_input("video", then="classify it").message.endswith("pick an example, then classify it.")
    assert "could not be loaded: bad file" in errors.model_not_loaded("m", "bad file").message
    assert errors.unreadable("empty", "video").message == "This file cannot be used as a video: empty"
