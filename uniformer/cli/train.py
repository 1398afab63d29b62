"""``train``: fine-tune a registered model (also under ``torchrun --nproc_per_node N``)."""
from __future__ import annotations

import argparse
import json

from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    tr = sub.add_parser("train", help="train / fine-tune a model (also under torchrun --nproc_per_node N)",
                        description="Train a registered model on an image folder, a CSV video list or a built-in "
                                    "dataset (digits, moving_digits). Defaults follow the paper's recipe (§6.1).")
    add_train_arguments(tr)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (``--field-name``), defaults and help from the config."""
    import dataclasses

    from ..train.config import TrainConfig

    helps = {
        "model": "registered model name (python -m uniformer list)", "data": "digits, moving_digits, an image "
        "folder (one sub-folder per class) or a CSV video list (path,label)", "val_data": "held-out folder / CSV",
        "output_dir": "folder for checkpoint-last.pt, metrics.jsonl and export/",
        "resume": "a training checkpoint, or 'auto' (OUTPUT/checkpoint-last.pt if present)",
        "freeze": "backbone: train the classifier only (linear probe)", "batch_size": "global batch per step",
        "input_size": "square input side in pixels (default: the model's)", "export": "write OUTPUT/export "
        "(safetensors + config.json + README.md model card)", "max_steps": "stop after this many steps "
        "(the schedule spans them)", "precision": "auto: bf16 on GPU, fp32 on CPU",
    }
    types = {"int": int, "float": float, "str": str}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "") + (f" (default {default})" if default not in (None, "") else "")
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", action="append", default=[], metavar="KEY=VALUE",
                           help="override a model config field; VALUE is JSON (e.g. spatial_dims=3, "
                                "depths=[1,1,2,1]); repeatable")
        elif f.name == "betas":
            p.add_argument(flag, type=float, nargs=2, default=default, help="AdamW betas" + text)
        elif f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            kind = types[f.type.split(" | ")[0]]
            names = [flag, "--output"] if f.name == "output_dir" else [flag]
            p.add_argument(*names, dest=f.name, type=kind, default=default, help=text)
    p.add_argument("--push-to-hub", metavar="USER/NAME", default=None,
                   help="upload the export to this Hugging Face model repo (needs --export, a network and a token)")
    p.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")


def _model_args(items: list[str]) -> dict:
    """``KEY=VALUE`` items (VALUE JSON, else a string) -> config overrides, JSON lists as tuples."""
    model_args = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg needs KEY=VALUE, got {item!r}")
        try:
            model_args[key] = json.loads(raw)
        except json.JSONDecodeError:
            model_args[key] = raw
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in model_args.items()}


def run(args, argv: list[str]) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    import dataclasses
    import os
    import shlex

    from ..train import TrainConfig, fit, push_to_hub

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    values["model_args"] = _model_args(values["model_args"])
    values["betas"] = tuple(values["betas"])
    if args.push_to_hub and not values["export"]:
        raise ValueError("--push-to-hub needs --export")
    cfg = TrainConfig(**values)
    world = int(os.environ.get("WORLD_SIZE", 1))
    launcher = f"torchrun --nproc_per_node {world} -m uniformer" if world > 1 else "python -m uniformer"
    result = fit(cfg, command=f"{launcher} {shlex.join(argv)}")
    report = Report()
    if int(os.environ.get("RANK", 0)) != 0:
        return Report(quiet=True)
    m = result.metrics
    report.data = {"metrics": m, "steps": result.state.step,
                   "export_dir": str(result.export_dir) if result.export_dir is not None else None}
    if "val_top1" in m:
        report.lines.append(f"held-out top-1 {m['val_top1']:.2f}% top-5 {m['val_top5']:.2f}% on {m['val_samples']} "
                            f"samples after {result.state.step} steps")
    if result.export_dir is not None:
        report.lines.append(f"exported to {result.export_dir}")
        if args.push_to_hub:
            url = push_to_hub(result.export_dir, args.push_to_hub, private=args.hub_private)
            report.data["pushed_to"] = str(url)
            report.lines.append(f"pushed to {url}")
    return report
