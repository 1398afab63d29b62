"""Helpers the commands share: loading a model as the options say, input files (folders expanded),
a progress bar over them and output names."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .output import Report

__all__ = ["add_model_options", "load_model", "expand_inputs", "progress", "output_stems", "IMAGE_SUFFIXES",
           "task_setup", "add_output_options"]

#: File name endings a folder is searched for when images are asked for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def add_model_options(p: argparse.ArgumentParser, default: str | None, kind: str, device: bool = True) -> None:
    """``--model``, ``--checkpoint``, ``--untrained`` (and ``--device``, ``--precision``) for ``kind``
    (e.g. 'segmentation')."""
    if default is not None:
        p.add_argument("--model", default=default, help=f"registered {kind} model (default {default})")
    p.add_argument("--checkpoint", default=None,
                   help="local checkpoint file (.pth or .safetensors) instead of the official file by name")
    p.add_argument("--untrained", action="store_true",
                   help="run with random weights when no checkpoint is given (the output is meaningless)")
    if device:
        p.add_argument("--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, cuda:1, ...")
        p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="autocast precision (fp16 needs CUDA)")


def add_output_options(p: argparse.ArgumentParser, out_help: str) -> None:
    """``--out DIR`` (what is written there: ``out_help``) and ``--json``."""
    p.add_argument("--out", default=None, metavar="DIR", help=out_help)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def load_model(name: str, args, report: Report, own: bool = True, fallback: bool = False, runtime: str = "torch"):
    """The model ``name`` with the weights the options ask for; ``own``: --checkpoint is about this
    model. ``fallback``: when the official weights cannot be had, run untrained (saying so in
    ``report.warnings``) instead of raising. Untrained weights always add a warning.

    Raises KeyError (unknown name), CheckpointError (a bad or unavailable checkpoint)."""
    from .. import create_model
    from ..hub import CheckpointNotAvailableError

    why = ""
    if own and getattr(args, "checkpoint", None):
        model = create_model(name, checkpoint_path=args.checkpoint, runtime=runtime)
    elif getattr(args, "untrained", False):
        model = create_model(name, runtime=runtime)
    else:
        try:
            model = create_model(name, pretrained=True, runtime=runtime)
        except CheckpointNotAvailableError as e:
            if not fallback:
                raise
            why = f" Its official weights could not be had: {e}"
            model = create_model(name, runtime=runtime)
    if not model.weights_info.trained:
        report.warnings.append(f"{name} runs with UNTRAINED random weights: its output is meaningless. Pass "
                               f"--checkpoint PATH or allow the download of the official file.{why}")
    return model


def expand_inputs(paths: Iterable[str], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[str]:
    """``paths`` with each folder replaced by its files ending in ``suffixes`` (sorted, recursive);
    files are kept as given (a bad one is reported when it is read). Raises ValueError for a folder
    without such files or a path that does not exist."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise ValueError(f"folder {p} holds no files ending in {', '.join(suffixes)}")
            out += found
        elif not path.exists():
            raise ValueError(f"{p}: no such file or folder")
        else:
            out.append(str(p))
    return out


def progress(items: Sequence, desc: str) -> Iterator:
    """``items`` with a tqdm bar on stderr when there are at least two."""
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit="file", disable=len(items) < 2, leave=False))


def output_stems(paths: Sequence[str]) -> list[str]:
    """One output name per input: the file's stem, made unique with its parent folders' names when
    two inputs share one (``a/x.jpg``, ``b/x.jpg`` -> ``a_x``, ``b_x``)."""
    plain = [Path(p).stem for p in paths]
    stems = list(plain)
    for i, p in enumerate(paths):
        if plain.count(plain[i]) > 1:
            parts = Path(p).with_suffix("").parts
            stems[i] = "_".join(parts[-2:]) if len(parts) > 1 else parts[-1]
    seen: dict[str, int] = {}
    for i, s in enumerate(stems):  # still equal (e.g. x.jpg and x.png): number them
        seen[s] = seen.get(s, 0) + 1
        if seen[s] > 1:
            stems[i] = f"{s}_{seen[s]}"
    return stems


def task_setup(args, task: str, kind: str, report: Report, fallback: bool):
    """What the per-image task commands (detect, segment, pose) start with: check that ``args.model``
    is a registered ``task`` model (ValueError naming the choices), expand the inputs, load the model
    (:func:`load_model`; ``fallback``: untrained when the official weights cannot be had), pick the
    device, create ``--out`` and put the model line in ``report`` -> (files, model, device, out dir or
    None)."""
    from .. import list_models
    from ..inference import select_device

    models = list_models(task=task)
    if args.model not in models:
        raise ValueError(f"{args.model!r} is not a {kind} model; choose one of {models}")
    files = expand_inputs(args.images)
    model = load_model(args.model, args, report, fallback=fallback)
    device = select_device(args.device)
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    report.lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}")
    return files, model, device, out_dir
