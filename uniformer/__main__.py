"""Command line: ``python -m uniformer {predict,list,convert} ...``.

    python -m uniformer predict photo.jpg [more.jpg ...] [--model NAME] [--topk 5] [--json]
    python -m uniformer list [PATTERN]
    python -m uniformer convert TRAINING_CKPT.pth OUT.pth --trust-source
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]

DEFAULT_MODEL = "uniformer_small_in1k"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uniformer", description="UniFormer models from the command line.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="classify images (ImageNet-1k top-k)")
    pr.add_argument("images", nargs="+", help="image files (JPEG, PNG, WebP, TIFF, ...)")
    pr.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model name (default {DEFAULT_MODEL})")
    pr.add_argument("--topk", type=int, default=5, help="number of classes to print (default 5)")
    pr.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    pr.add_argument("--checkpoint", default=None, help="local checkpoint file instead of the Hub download")
    pr.add_argument("--untrained", action="store_true",
                    help="run with random weights when no checkpoint is given (predictions are meaningless)")
    pr.add_argument("--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, cuda:1, ...")
    pr.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                    help="autocast precision (fp16 needs CUDA)")

    ls = sub.add_parser("list", help="list registered models")
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'uniformer_small*'")

    cv = sub.add_parser("convert", help="extract the weights of a training checkpoint that safe loading refuses")
    cv.add_argument("src")
    cv.add_argument("dst")
    cv.add_argument("--trust-source", action="store_true", required=True,
                    help="required: the file is unpickled unsafely (it can run code), so only for files you trust")
    return p


def _predict(args) -> int:
    from . import create_model
    from .inference import predict_images

    if args.checkpoint:
        model = create_model(args.model, checkpoint_path=args.checkpoint)
    elif args.untrained:
        model = create_model(args.model)
    else:
        model = create_model(args.model, pretrained=True)
    if not model.weights_info.trained:
        print(f"WARNING: {args.model} runs with untrained random weights: predictions are meaningless. "
              f"Pass --checkpoint PATH or allow the Hub download.", file=sys.stderr)
    from .inference import select_device

    device = select_device(args.device)
    results, failures = [], 0
    from .data import ImageDecodeError

    for path in args.images:
        try:
            results.append(predict_images(model, [path], topk=args.topk, device=device, precision=args.precision,
                                          sources=[path])[0])
        except ImageDecodeError as e:
            failures += 1
            print(f"error: {path}: {e}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(f"model: {args.model}  weights: {model.weights_info.describe()}  device: {device}")
        for r in results:
            print(f"\n{r.source}  ({r.inference_ms:.1f} ms)")
            for c in r.topk:
                print(f"  {c.probability * 100:6.2f}%  {c.label}  [{c.index}]")
    return 1 if failures else 0


def _convert(args) -> int:
    import torch

    from .hub import unwrap_state_dict

    obj = torch.load(args.src, map_location="cpu", weights_only=False)  # explicit, user-confirmed opt-in
    state_dict = unwrap_state_dict(obj, args.src)
    torch.save(state_dict, args.dst)
    print(f"wrote {len(state_dict)} tensors to {args.dst}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 some input failed, 2 usage or loading error)."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        from . import get_entry, list_models

        for name in list_models(args.pattern):
            e = get_entry(name)
            where = e.pretrained.hub or "local file (Google Drive / Baidu)"
            print(f"{name:36s} {e.description:55s} {where}")
        return 0
    from .hub import CheckpointError

    try:
        return _predict(args) if args.command == "predict" else _convert(args)
    except (CheckpointError, KeyError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
