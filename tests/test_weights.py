"""The Weights panel's handlers (app/weights.py) without a browser: an uploaded checkpoint is live
for its session only, bad files get the safe loader's errors (never a server path), the official
download goes through the library (offline: its clear error; from a local Hub cache: shared by
every session)."""
from __future__ import annotations


import gradio as gr
import huggingface_hub.constants as hf_constants
import pytest
import torch
from hubcache import add_to_hub_cache, official_state_dict

import uniformer
from app import handlers, models
from app.examples import write_examples
from app.weights import SessionWeights, WeightsPanel, download_official, forget_upload, use_uploaded

DIGITS = "uniformer_xxs_digits"  # ships project-trained weights: the shared model
LIGHT = "uniformer_xxs_160_in1k"  # the light model on the Hub


class Arbitrary:
    """A pickled object the safe loader must refuse."""


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.delenv(models.CHECKPOINT_DIR_ENV, raising=False)
    models.clear_cache()
    yield
    models.clear_cache()


def _offline_hub(monkeypatch, hf_home) -> None:
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


def test_upload_is_live_for_its_session_only(fresh_cache, tmp_path):
    path = tmp_path / "my_digits.pth"
    torch.save(uniformer.create_model(DIGITS).state_dict(), path)
    session, weights, banner = use_uploaded(str(path), DIGITS, SessionWeights())
    assert weights == "**Weights:** local file `my_digits.pth` (uploaded, this session only)" and banner == ""
    assert set(session.uploads) == {DIGITS}

    photo = str(write_examples()["chelsea"])
    classify = WeightsPanel.bind(handlers.classify_image)
    assert "local checkpoint file my_digits.pth" in classify(session, photo, DIGITS, "fp32").details
    assert str(tmp_path) not in classify(session, photo, DIGITS, "fp32").details
    other = classify(SessionWeights(), photo, DIGITS, "fp32")  # another session: the shared weights
    assert "project-trained" in other.details or "trained by this project" in other.details
    assert models.get_model(DIGITS).weights.source == "project"
    with models.use_session(session.uploads):
        assert models.get_model(DIGITS).origin == "upload"

    back, weights, _ = forget_upload(DIGITS, session)
    assert back.uploads == {} and weights.startswith("**Weights:** project-trained")


def test_bad_files_get_the_safe_loaders_errors(fresh_cache, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {"w": Arbitrary()}}, unsafe)
    other_model = tmp_path / "other.pth"
    torch.save({"head.weight": torch.zeros(3, 3)}, other_model)
    session = SessionWeights()
    for path, error in ((text, "InvalidCheckpointError"), (unsafe, "UnsafeCheckpointError"),
                        (other_model, "CheckpointMismatchError")):
        with pytest.raises(gr.Error) as info:
            use_uploaded(str(path), DIGITS, session)
        message = info.value.message
        assert message.startswith(f"{path.name} cannot be used as weights of {DIGITS}: {error}")
        assert str(tmp_path) not in message  # the file's name, never its server path
    assert session.uploads == {} and models.get_model(DIGITS).weights.source == "project"


def test_download_offline_fails_with_the_librarys_message(fresh_cache, tmp_path, monkeypatch):
    _offline_hub(monkeypatch, tmp_path / "hf_home")
    with pytest.raises(gr.Error) as info:
        download_official(LIGHT, SessionWeights())
    assert "CheckpointNotAvailableError" in info.value.message and info.value.title == "Download failed"


def test_download_makes_the_official_file_live_for_every_session(fresh_cache, tmp_path, monkeypatch):
    hf_home = tmp_path / "hf_home"
    _offline_hub(monkeypatch, tmp_path / "empty")
    assert models.get_model(LIGHT).weights.source == "untrained"  # nothing to be had yet
    stale_key = models.weights_key(LIGHT)
    add_to_hub_cache(hf_home, "Andy1621/uniformer_light", f"{LIGHT}.pth", official_state_dict("light_xxs"))
    _offline_hub(monkeypatch, hf_home)  # the file is now where the library downloads to
    upload = models.UploadedCheckpoint(LIGHT, str(tmp_path / "x.pth"), "x.pth", "0" * 64)
    session, weights, banner = download_official(LIGHT, SessionWeights({LIGHT: upload}))
    line = f"**Weights:** official file \u00b7 official Hub checkpoint Andy1621/uniformer_light/{LIGHT}.pth"
    assert (weights, banner) == (line, "") and session.uploads == {}  # the session's upload gives way
    assert models.get_model(LIGHT).weights.source == "hub"  # shared: every session gets it
    assert models.weights_key(LIGHT) != stale_key  # results cached for the untrained weights are not reused


def test_bound_handlers_get_their_arguments_where_gradio_puts_them():
    """Gradio inserts gr.Progress / event data at their parameter's position and pads missing
    defaults (gradio.helpers.special_args): the session comes first, so nothing shifts."""
    from gradio.helpers import special_args

    def handler(image, model_name, repeats=3, cache="shared", progress=gr.Progress()):
        return image, model_name, repeats, cache, isinstance(progress, gr.Progress)

    bound = WeightsPanel.bind(handler)
    args, progress_index, *_ = special_args(bound, [SessionWeights(), "photo.png", "m"])
    assert bound(*args) == ("photo.png", "m", 3, "shared", True) and progress_index == 5
