"""The Weights panel's handlers (app/weights.py) without a browser: an uploaded checkpoint is live
for its session only, bad files get the safe loader's errors (never a server path), the official
download goes through the library (offline: its clear error; from a local Hub cache: shared by
every session)."""
from __future__ import annotations

import subprocess

import gradio as gr
import huggingface_hub.constants as hf_constants
import pytest
import torch
from hubcache import add_to_hub_cache, official_state_dict

import uniformer
from app import handlers, models
from app.examples import write_examples
from app.weights import (MAX_CHECKPOINT_MB, STATUS_DELAY_ENV, SessionWeights, WeightsPanel, download_official,
                         forget_upload, show_status, use_uploaded)

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
    session = use_uploaded(str(path), DIGITS, SessionWeights())
    weights, banner = show_status(session, DIGITS)
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

    back = forget_upload(DIGITS, session)
    assert back.uploads == {} and show_status(back, DIGITS).weights.startswith("**Weights:** project-trained")


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
    session = download_official(LIGHT, SessionWeights({LIGHT: upload}))
    weights, banner = show_status(session, LIGHT)
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


def test_the_weights_line_follows_the_latest_model_and_upload_whatever_order_events_end(fresh_cache, tmp_path):
    """Issue 20: a model change's status that finished after an upload wrote the older line over
    the newer one. Now a panel's actions write only the session state; the line and banner have
    one writer per tab (show_status), triggered by page load, model change and state change,
    with trigger_mode always_last: Gradio runs it once at a time per session and reruns it with
    the latest trigger, reading the state as it is then. Here the bad order, at function level:
    the model change's status computed before the upload, then the upload; the status the
    state change triggers sees the upload."""
    from app.builder import build_app

    path = tmp_path / "my_digits.pth"
    torch.save(uniformer.create_model(DIGITS).state_dict(), path)
    before = SessionWeights()
    stale = show_status(before, DIGITS)  # the model change's status, started before the upload ended
    after = use_uploaded(str(path), DIGITS, before)
    assert hash(after) != hash(before)  # Gradio's state change fires (it compares hashes)
    assert "project-trained" in stale.weights and "local file" in show_status(after, DIGITS).weights
    same = forget_upload(DIGITS, SessionWeights())  # nothing to forget: still a new state, the line is redrawn
    assert same.uploads == {} and hash(same) != hash(SessionWeights())

    demo = build_app()
    fns = list(demo.fns.values())
    components = {c._id: c for c in demo.blocks.values()}
    for prefix in ("image", "explain", "shrink", "seg", "det", "pose", "video"):
        elem_id = "weights" if prefix == "image" else f"{prefix}-weights"
        weights_id = next(i for i, c in components.items() if getattr(c, "elem_id", None) == elem_id)
        writers = [f for f in fns if weights_id in [o._id for o in f.outputs]]
        assert len(writers) == 1, prefix  # one writer of the line per tab
        (show,) = writers
        state_id = show.inputs[0]._id
        events = {event for _, event in show.targets}
        assert {"load", "change"} <= events and (state_id, "change") in show.targets, prefix
        assert show.trigger_mode == "always_last", prefix
        panel_actions = [f for f in fns if state_id in [o._id for o in f.outputs]]
        assert len(panel_actions) == 3 and all(len(f.outputs) == 1 for f in panel_actions), prefix  # state only


def test_a_slow_status_can_be_forced_for_the_race_test(monkeypatch):
    """The browser test of the race slows the status down with $UNIFORMER_STATUS_DELAY_S."""
    import time

    monkeypatch.setenv(STATUS_DELAY_ENV, "0.3")
    started = time.perf_counter()
    show_status(SessionWeights(), DIGITS)
    assert time.perf_counter() - started >= 0.3


def test_huge_and_zero_filled_checkpoints_get_one_whole_message_with_what_a_visitor_can_do(fresh_cache, tmp_path):
    """Issue 20 #5: a 1000 MB zero-filled .pth (sparse: no real bytes written) is refused in whole
    words, without PyTorch's paragraph cut mid-word, and the message says what a visitor of a Space
    can do; a file over the limit keeps the operator's route in a collapsed detail."""
    zeros = tmp_path / "zeros.pth"
    subprocess.run(["truncate", "-s", "1000M", str(zeros)], check=True)
    with pytest.raises(gr.Error) as info:
        use_uploaded(str(zeros), LIGHT, SessionWeights())
    message = info.value.message
    assert info.value.title == "Checkpoint not usable"
    assert message.startswith(f"zeros.pth cannot be used as weights of {LIGHT}: InvalidCheckpointError: zeros.pth is "
                              "not a readable PyTorch checkpoint")
    assert "we changed the default valu" not in message and "In PyTorch 2.6" not in message
    assert "legacy .tar format.)" in message  # the cause's first sentence, whole
    assert '"Download official weights"' in message and f"Upload a checkpoint file of {LIGHT}" in message
    assert str(tmp_path) not in message

    big = tmp_path / "big.pth"
    subprocess.run(["truncate", "-s", f"{MAX_CHECKPOINT_MB + 1}M", str(big)], check=True)
    with pytest.raises(gr.Error) as info:
        use_uploaded(str(big), LIGHT, SessionWeights())
    message = info.value.message
    assert info.value.title == "File too large" and message.startswith(f"big.pth is {MAX_CHECKPOINT_MB + 1} MB")
    visible, detail = message.split("<details>", 1)
    assert '"Download official weights"' in visible and "UNIFORMER_CHECKPOINT_DIR" not in visible
    assert detail.startswith("<summary>Running the app yourself</summary>") and "$UNIFORMER_CHECKPOINT_DIR" in detail


def test_the_untrained_banner_tells_visitors_what_they_can_do_and_operators_more():
    loaded = models.LoadedModel(LIGHT, torch.nn.Linear(1, 1), fallback_reason="offline")
    banner = handlers.render_status(loaded).banner
    visible = banner.split("<details>", 1)[0]
    assert "Download official weights" in visible and "upload a checkpoint file" in visible
    assert "UNIFORMER_CHECKPOINT_DIR" not in visible and "HF_HUB_OFFLINE" not in visible
    operator = banner.split("<summary>Running the app yourself</summary>", 1)[1].split("</details>", 1)[0]
    assert "$UNIFORMER_CHECKPOINT_DIR" in operator and f"python -m uniformer download {LIGHT}" in operator
