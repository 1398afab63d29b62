"""Command line: ``python -m uniformer COMMAND ...`` (one module per command; each returns a
:class:`~uniformer.cli.output.Report` and :func:`~uniformer.cli.output.emit` prints it).

    python -m uniformer predict photo.jpg [more.jpg folder/ ...] [--model NAME] [--topk 5] [--json]
    python -m uniformer predict clip.mp4 [--model uniformer_small_k400_16x8] [--views 4x1] [--json]
    python -m uniformer detect photo.jpg [--model mask_rcnn_1x_hybrid_small] [--out DIR] [--json]
    python -m uniformer segment photo.jpg [--model upernet_global_small] [--out DIR] [--json]
    python -m uniformer pose photo.jpg [--boxes 'x,y,w,h; ...'] [--out DIR] [--json]
    python -m uniformer evaluate NAME --data PATH [--json] [--batch-size N]   (also under torchrun)
    python -m uniformer list [PATTERN]
    python -m uniformer download NAME_OR_PATTERN... [--dry-run] [--json]
    python -m uniformer mirror REPO_ID [NAMES...] [--dry-run]
    python -m uniformer export NAME --format onnx OUT.onnx [--checkpoint PATH] [--input-size 3x224x224]
    python -m uniformer convert TRAINING_CKPT.pth OUT.pth --trust-source
    python -m uniformer train --data digits --epochs 30 --output runs/digits --export
    torchrun --nproc_per_node 2 -m uniformer train ...      (the same run on 2 processes)
"""
from __future__ import annotations

import argparse
import sys

from . import convert, detect, download, evaluate, export, listing, mirror, pose, predict, segment, train
from .output import Report, emit

__all__ = ["main", "build_parser", "Report", "emit"]

#: command name -> module with ``add_parser(subparsers)`` and ``run(args) -> Report``.
COMMANDS = {"predict": predict, "detect": detect, "segment": segment, "pose": pose, "list": listing,
            "evaluate": evaluate, "download": download, "mirror": mirror, "export": export, "convert": convert,
            "train": train}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m uniformer`` parser: one sub-command per entry of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(prog="python -m uniformer", description="UniFormer models from the command line.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 some input failed, 2 usage or loading error)."""
    from ..hub import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    module = COMMANDS[args.command]
    try:
        report = module.run(args, argv) if module is train else module.run(args)
    except (CheckpointError, KeyError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return emit(report, as_json=getattr(args, "json", False))
