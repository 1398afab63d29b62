"""The "Weights" panel every tab with a model choice shows: download the selected model's official
checkpoint, or run a checkpoint file you upload, for your session only; the weights line says
which weights are live ("official file", "local file", "project-trained" or "untrained").

One component for every tab (:func:`build_weights_panel`); a tab builds it under its model dropdown
and wraps the event functions that use the model with :meth:`WeightsPanel.bind`, adding
``panel.state`` as the first input. The state (a :class:`SessionWeights`) holds the session's
uploads; inside a bound function :func:`app.models.get_model` returns the uploaded file's model for
that name, every other session keeps the shared one. Uploaded models live in the app's one model
cache (bounded in bytes, :func:`app.models.model_cache`), keyed by the file's SHA-256; an evicted one
reloads from the uploaded file on demand.

Order: the panel's actions (upload, download, shared weights) write only the session state; the
weights line and banner have one writer, :func:`show_status`, run on page load, a model change and
a change of that state as one Gradio event with ``trigger_mode="always_last"`` (once at a time per
session, rerun with the latest trigger), so a slow model change can never write an older line over
a newer upload's (issue 20).

Uploads are read by the library's safe loader (``uniformer.create_model(name, checkpoint_path=...)``):
an invalid, unsafe (pickled code) or mismatching file gets its clear error and changes nothing.
Checkpoint files may be up to :data:`MAX_CHECKPOINT_MB` MB (the largest official ones are ~0.6 GB);
the app's ``launch(max_file_size=...)`` must allow at least that much (media limits are checked
per tab).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr

from uniformer import CheckpointError

from . import errors, models
from .cache import discard_upload
from .gpu import gpu_task
from .handlers import ModelStatus, model_status

__all__ = ["MAX_CHECKPOINT_MB", "CHECKPOINT_TYPES", "PRELOAD_ENV", "STATUS_DELAY_ENV", "SessionWeights",
           "WeightsPanel", "build_weights_panel", "show_status", "use_uploaded", "forget_upload", "download_official",
           "start_preload"]

#: Largest checkpoint file (MB) the panel accepts.
MAX_CHECKPOINT_MB = 1024
#: File types offered by the upload button (the library reads all of them).
CHECKPOINT_TYPES = [".pth", ".pt", ".bin", ".ckpt", ".safetensors"]
#: Environment variable (tests only): seconds :func:`show_status` waits before it answers.
STATUS_DELAY_ENV = "UNIFORMER_STATUS_DELAY_S"
#: Environment variable: model names whose weights ``python -m uniformer download`` fetches in the
#: background when the app starts (comma or space separated).
PRELOAD_ENV = "UNIFORMER_PRELOAD"


@dataclass(frozen=True)
class SessionWeights:
    """One session's uploaded checkpoints: {model name: :class:`app.models.UploadedCheckpoint`}
    (the value of the panel's ``gr.State``), and ``revision``, counting the panel's actions
    (upload, shared weights, download): each action makes a new value, so the state's change event
    redraws the weights line even when the uploads stay the same (a download changes the shared
    weights). Hashable: Gradio hashes a state to tell whether it changed."""

    uploads: dict = field(default_factory=dict)
    revision: int = 0

    def with_upload(self, upload: models.UploadedCheckpoint) -> "SessionWeights":
        return SessionWeights({**self.uploads, upload.name: upload}, self.revision + 1)

    def without(self, name: str) -> "SessionWeights":
        return SessionWeights({k: v for k, v in self.uploads.items() if k != name}, self.revision + 1)

    def __hash__(self) -> int:
        return hash((self.revision, tuple(sorted((k, v.sha256) for k, v in self.uploads.items()))))


def _bound(fn: Callable) -> Callable:
    """``fn`` taking one more positional argument first, the session's :class:`SessionWeights`, and
    running inside :func:`app.models.use_session` of its uploads. First, so that the positions
    Gradio gives the other parameters (inputs, then gr.Progress / gr.SelectData / defaults where the
    signature has them) all move by one."""
    @functools.wraps(fn)
    def run(session, *args, **kwargs):
        uploads = session.uploads if isinstance(session, SessionWeights) else {}
        with models.use_session(uploads):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    extra = inspect.Parameter("session_weights", inspect.Parameter.POSITIONAL_ONLY)
    run.__signature__ = sig.replace(parameters=[extra, *sig.parameters.values()])
    return run


@dataclass(frozen=True)
class WeightsPanel:
    """What a tab needs from its weights panel: ``state`` (the first input of every bound event)
    and :meth:`bind`."""

    state: gr.State

    @staticmethod
    def bind(fn: Callable, gpu: int | None = None) -> Callable:
        """``fn`` running with this session's uploaded weights (its inputs: ``panel.state``, then the
        usual ones); with ``gpu`` (seconds), also a ZeroGPU task (:func:`app.gpu.gpu_task`)."""
        bound = _bound(fn)
        return gpu_task(gpu)(bound) if gpu is not None else bound


def show_status(session: SessionWeights, model_name: str,
                status: Callable[[str], ModelStatus] = model_status) -> ModelStatus:
    """The weights line and banner of ``model_name`` with this session's uploads (``status``: the
    tab's model name -> ModelStatus). The panel's only writer of the line and banner: it runs on
    page load, on a model change and on every change of the session state, as one event with
    ``trigger_mode="always_last"``, so the line always describes the latest model and uploads, in
    the order they happened (issue 20: an upload finishing before the model change's status must
    not be overwritten by it). ``$UNIFORMER_STATUS_DELAY_S`` (tests only) delays it by that many
    seconds, to force that interleaving."""
    delay = float(os.environ.get(STATUS_DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    with models.use_session(session.uploads if isinstance(session, SessionWeights) else {}):
        return ModelStatus(*status(model_name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def use_uploaded(file, model_name: str, session: SessionWeights) -> SessionWeights:
    """Make the uploaded checkpoint ``file`` (a path) the weights of ``model_name`` for this session.
    Returns the new session state (the weights line follows it: :func:`show_status`). Raises
    gr.Error, the session unchanged, for a file over :data:`MAX_CHECKPOINT_MB` or one the safe
    loader refuses (its message). No file: the session unchanged."""
    if not file:
        return session
    path = Path(file)
    size_mb = path.stat().st_size / models.MB
    if size_mb > MAX_CHECKPOINT_MB:
        discard_upload(path)  # refused: not kept on disk until the TTL
        raise errors.checkpoint_too_large(path.name, size_mb, MAX_CHECKPOINT_MB, model_name)
    upload = models.UploadedCheckpoint(model_name, str(path), path.name, _sha256(path))
    with models.use_session({model_name: upload}):
        loaded = models.get_model(model_name)
    if loaded.model is None:
        discard_upload(path)  # refused: not kept on disk until the TTL
        raise errors.checkpoint_refused(path.name, model_name, loaded.error)
    return session.with_upload(upload)


def forget_upload(model_name: str, session: SessionWeights) -> SessionWeights:
    """Back to the shared weights of ``model_name`` for this session -> the new session state."""
    return session.without(model_name)


def download_official(model_name: str, session: SessionWeights,
                      progress=gr.Progress(track_tqdm=True)) -> SessionWeights:
    """Fetch the official checkpoint of ``model_name`` (the library's download, progress bars shown)
    and make it the shared model; this session drops its upload for that name so the official file
    is live. Returns the new session state. Raises gr.Error with the library's message when the
    file cannot be had (no network: at once) or is refused."""
    progress(0, desc=f"Fetching the official weights of {model_name}")
    try:
        models.load_official(model_name)
    except CheckpointError as e:
        raise gr.Error(models.redact_paths(f"{type(e).__name__}: {e}"), title="Download failed",
                       print_exception=False) from None
    gr.Info(f"The official weights of {model_name} are now live for every user.")
    return forget_upload(model_name, session)


def build_weights_panel(demo: gr.Blocks, model: gr.Dropdown, weights: gr.Markdown, banner: gr.HTML, prefix: str,
                        status: Callable[[str], ModelStatus] = model_status) -> WeightsPanel:
    """Add the panel (an accordion: download button, checkpoint upload, "use shared weights") where
    it is called, wired to the tab's ``model`` dropdown and its ``weights`` line and ``banner``
    (``status``: model name -> ModelStatus, the tab's own), which the panel alone writes
    (:func:`show_status`, on ``demo``'s load, a model change and a change of the session's
    weights). The panel's actions write only the session state, so a failed one leaves the line
    and banner as they were. ``prefix`` makes the element ids unique (``<prefix>-download``,
    ``<prefix>-checkpoint``, ``<prefix>-shared``). Returns the panel."""
    state = gr.State(SessionWeights())
    with gr.Accordion("Weights: official download or your own checkpoint", open=False,
                      elem_id=f"{prefix}-weights-panel"):
        gr.Markdown(f"**Download** fetches the selected model's official checkpoint (shared by every user). "
                    f"**Upload** a checkpoint file (official or this project's format, "
                    f"{', '.join(CHECKPOINT_TYPES)}, up to {MAX_CHECKPOINT_MB} MB) to run it in your session "
                    f"only; it is read safely (no pickled code) and must match the selected model.")
        with gr.Row():
            download = gr.Button("Download official weights", size="sm", elem_id=f"{prefix}-download")
            shared = gr.Button("Use the shared weights", size="sm", elem_id=f"{prefix}-shared")
        upload = gr.File(label="Your checkpoint file", file_types=CHECKPOINT_TYPES, type="filepath",
                         elem_id=f"{prefix}-checkpoint", height=90)
    download.click(download_official, [model, state], state, api_visibility="private", concurrency_limit=None)
    upload.upload(use_uploaded, [upload, model, state], state, api_visibility="private", concurrency_limit=None)
    shared.click(forget_upload, [model, state], state, api_visibility="private")
    model.change(lambda: None, None, upload, api_visibility="private", show_progress="hidden")
    # one event writes the line: Gradio runs it once at a time per session and always last with
    # the latest trigger, so an older model change never overwrites a newer upload's line
    show = functools.partial(show_status, status=status)
    show.__name__ = show.__qualname__ = status.__name__  # named in logs and ZeroGPU's list
    gr.on([demo.load, model.change, state.change], show, [state, model], [weights, banner], api_visibility="private",
          trigger_mode="always_last")
    return WeightsPanel(state)


def start_preload(names: str | None = None) -> subprocess.Popen | None:
    """Start ``python -m uniformer download NAME...`` in the background for the names in
    ``names`` (default: ``$UNIFORMER_PRELOAD``); its output goes to the app's log. None when the
    list is empty."""
    names = os.environ.get(PRELOAD_ENV, "") if names is None else names
    todo = [n for n in names.replace(",", " ").split() if n]
    if not todo:
        return None
    return subprocess.Popen([sys.executable, "-m", "uniformer", "download", *todo])
