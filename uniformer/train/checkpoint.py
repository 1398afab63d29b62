"""Training checkpoints (exact resume), model export (safetensors + JSON config + model card),
and upload to the Hugging Face Hub.

Resume: ``checkpoint-last.pt`` holds the model, optimizer, LR scheduler and EMA states, the
position (epoch, steps done in it, total steps), the metrics history and the random-generator
states of *every* process (Python, NumPy, torch CPU and CUDA). Together with the per-sample
seeded data (``data.SeededSamples``) a resumed run continues exactly as the uninterrupted run.
It is written atomically (temporary file + rename) by rank 0 and read with
``torch.load(weights_only=True)`` (no unpickling of code).

Export: a folder with ``model.safetensors`` (weights; the config JSON embedded in its metadata),
``config.json`` (model name, every config field, class names, preprocessing, how it was
trained) and ``README.md`` (a model card: usage, exact command, held-out accuracy).
``uniformer.create_model(name, checkpoint_path=folder)`` loads it back (``uniformer.hub``).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import pickle
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..hub import (EXPORT_CONFIG_NAME, EXPORT_FORMAT, EXPORT_METADATA_KEY, EXPORT_WEIGHTS_NAME, PROJECT,
                   CheckpointNotAvailableError, InvalidCheckpointError)

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "rng_state", "set_rng_state", "save_checkpoint",
           "load_checkpoint", "export_model", "model_card", "push_to_hub"]

CHECKPOINT_NAME = "checkpoint-last.pt"
CHECKPOINT_FORMAT = "uniformer-train-checkpoint"


# --- random generators ---------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """This process's generator states (Python ``random``, NumPy global, torch CPU, torch CUDA),
    as plain containers and tensors (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- resume checkpoints --------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (see ``engine``: model, optimizer, scheduler, ema, state, rng, config, ...)
    atomically to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, **payload}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint` (safe loading, CPU).
    Raises CheckpointNotAvailableError (no file) or InvalidCheckpointError (not a training checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotAvailableError(f"training checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, OSError, AttributeError,
            IndexError) as e:  # truncated / foreign file (as hub.read_state_dict)
        raise InvalidCheckpointError(f"{path} is not a readable training checkpoint ({type(e).__name__}: "
                                     f"{str(e)[:160]})") from e
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise InvalidCheckpointError(f"{path} is not a uniformer training checkpoint (use it as an initial "
                                     f"checkpoint instead: --init-checkpoint)")
    return obj


# --- export --------------------------------------------------------------------------------------

def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def export_model(model: nn.Module, out_dir: str | os.PathLike, classes: Sequence[str], *,
                 model_name: str | None = None, pretrained_cfg=None, label_set: str = "custom",
                 metrics: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                 command: str | None = None, description: str | None = None, trained_by: str = PROJECT) -> Path:
    """Write ``model`` (a UniFormer from ``create_model``/training; eval weights) to ``out_dir``:
    ``model.safetensors``, ``config.json``, ``README.md``. Returns ``out_dir``.

    ``model_name``: its registry name (default ``model.model_name``); every field of
    ``model.cfg`` is stored, so the registry entry's config plus these fields rebuild it exactly.
    ``pretrained_cfg``: preprocessing (input size, crop, interpolation, mean/std; default
    ``model.pretrained_cfg``). ``classes``: class names in head order (len = num_classes).
    ``metrics`` (e.g. held-out top-1), ``training`` (config dict, steps, dataset) and ``command``
    go into config.json and the model card. Raises ValueError when the class count does not match.
    """
    from safetensors.torch import save_file

    from .. import __version__

    model_name = model_name or getattr(model, "model_name", None)
    if model_name is None:
        raise ValueError("model_name is needed (the registry name the model was built from)")
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise ValueError(f"{type(model).__name__} has no .cfg; export works for UniFormer models")
    num_classes = getattr(cfg, "num_classes", None)
    if num_classes is not None and num_classes != len(classes):
        raise ValueError(f"{len(classes)} class names for a {num_classes}-class head")
    pretrained_cfg = pretrained_cfg if pretrained_cfg is not None else getattr(model, "pretrained_cfg", None)
    pre = _jsonable(pretrained_cfg) if pretrained_cfg is not None else {}
    for k in ("hub", "mirrors", "download_hint", "top1", "reference_variant", "labels", "package_file",
              "label_set", "num_classes"):
        pre.pop(k, None)
    config = {
        "format": EXPORT_FORMAT, "format_version": 1,
        "model_name": model_name, "architecture": type(model).__name__,
        "config": _jsonable(cfg), "num_classes": num_classes, "labels": list(classes), "label_set": label_set,
        "pretrained_cfg": pre, "trained_by": trained_by, "library_version": __version__,
        "description": description, "metrics": _jsonable(dict(metrics or {})),
        "training": _jsonable(dict(training or {})), "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "weights": EXPORT_WEIGHTS_NAME,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = out / EXPORT_WEIGHTS_NAME
    save_file(state, str(weights), metadata={EXPORT_METADATA_KEY: json.dumps(config), "format": "pt"})
    config["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    config["num_parameters"] = int(sum(p.numel() for p in model.parameters()))
    (out / EXPORT_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(config), encoding="utf-8")
    return out


def model_card(config: Mapping[str, Any]) -> str:
    """The model card (README.md, Hugging Face front matter) of an export ``config``."""
    metrics = config.get("metrics") or {}
    training = config.get("training") or {}
    pre = config.get("pretrained_cfg") or {}
    name = config["model_name"]
    labels = config.get("labels") or []
    top1 = metrics.get("val_top1")
    # model_args that override the registered config make a different (custom) model: say so, with its size
    custom = ", ".join(f"{k}={v}" for k, v in ((training.get("config") or {}).get("model_args") or {}).items())
    size = f"{config['num_parameters'] / 1e6:.2f} M-parameter " if config.get("num_parameters") else ""
    lines = [
        "---", "library_name: uniformer", "license: mit", "pipeline_tag: "
        + ("video-classification" if len(pre.get("input_size", [])) == 4 else "image-classification"),
        "tags:", "- uniformer", "- safetensors", "---", "",
        f"# {name} ({config.get('label_set', 'custom')})" if not custom else
        f"# Custom UniFormer for {config.get('label_set', 'custom')}: {name} with {custom}", "",
        config.get("description") or f"A {size}UniFormer (class `{config.get('architecture')}`) trained with the "
                                      f"`uniformer` project's training code (`python -m uniformer train`).",
        "",
        "## Results", "",
    ]
    if top1 is not None:
        lines.append(f"- held-out top-1 accuracy: **{top1:.2f}%** on {metrics.get('val_samples', '?')} samples "
                     f"({metrics.get('val_split', 'validation split')})")
    for key in ("val_top5", "val_loss", "train_loss"):
        if key in metrics and metrics[key] is not None:
            lines.append(f"- {key}: {metrics[key]:.4f}")
    lines += [f"- trained on {training.get('dataset', '?')} for {training.get('steps', '?')} steps "
              f"({training.get('epochs', '?')} epochs), {config.get('num_parameters', '?')} parameters", ""]
    lines += ["## Use", "", "```python", "import uniformer", "",
              f"model = uniformer.create_model({name!r}, checkpoint_path='path/to/this/folder')",
              "print(model.weights_info.describe(), model.pretrained_cfg.class_names())", "```", "",
              "Preprocessing: input " + "x".join(str(v) for v in pre.get("input_size", [])) +
              f", resize with {pre.get('interpolation', '?')}, crop_pct {pre.get('crop_pct', '?')}, "
              f"mean {pre.get('mean')}, std {pre.get('std')}.", ""]
    if config.get("command"):
        lines += ["## Reproduce", "", "```bash", config["command"], "```", ""]
    lines += [f"Classes ({len(labels)}): " + ", ".join(map(str, labels[:50])) + (" ..." if len(labels) > 50 else ""),
              ""]
    tc = training.get("config") or {}
    if tc:
        lines += ["## Training configuration", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in tc.items()]
        lines.append("")
    lines += ["Paper: Li et al., *UniFormer: Unifying Convolution and Self-attention for Visual Recognition*, "
              "TPAMI 2023 (arXiv 2201.09450).", ""]
    return "\n".join(lines)


def push_to_hub(export_dir: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool = False,
                commit_message: str | None = None, api=None) -> str:
    """Upload an export folder to the Hugging Face Hub model repo ``repo_id`` (created if needed)
    with ``huggingface_hub.HfApi`` (``create_repo(exist_ok=True)``, ``upload_folder``). Returns the
    commit URL. Needs a network and a token with write access (``token`` or ``hf auth login``).
    ``api``: an ``HfApi``-like object (tests). Raises ValueError for a folder that is not an
    export, and huggingface_hub's errors for network / permission failures.
    """
    folder = Path(export_dir)
    missing = [n for n in (EXPORT_WEIGHTS_NAME, EXPORT_CONFIG_NAME, "README.md") if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{folder} is not an export folder (missing {missing}); run export_model first")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message=commit_message or f"Upload {folder.name} (uniformer export)")
    return str(getattr(info, "commit_url", info))
