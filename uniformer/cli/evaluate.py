"""``evaluate``: a checkpoint on a benchmark with its family's official test protocol, ours beside
the paper's number (also under ``torchrun --nproc_per_node N``; rank 0 prints)."""
from __future__ import annotations

from .common import add_model_options, load_model
from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    ev = sub.add_parser(
        "evaluate", help="evaluate a checkpoint on a benchmark with the official protocol (also under torchrun)",
        description="Families and layouts: image (ImageNet-style folder: one sub-folder per class), video (CSV "
                    "list path,label), segmentation (ADE20K: images/validation + annotations/validation), "
                    "detection (COCO: annotations/instances_val2017.json + val2017/), pose (COCO: "
                    "annotations/person_keypoints_val2017.json + val2017/; ground-truth boxes or --det-file).")
    ev.add_argument("model", help="registered model name (its task picks the family)")
    ev.add_argument("--data", required=True, help="dataset folder (or the CSV list for video)")
    ev.add_argument("--batch-size", type=int, default=64, help="images per forward (image family; default 64)")
    ev.add_argument("--multi-scale", action="store_true", help="segmentation: the multi-scale + flip test")
    ev.add_argument("--views", default=None, metavar="CLIPSxCROPS", help="video: views (default: the official ones)")
    ev.add_argument("--ann-file", default=None, help="COCO: annotation JSON (default: the layout's)")
    ev.add_argument("--det-file", default=None, help="pose: person detections (COCO results JSON) instead of "
                                                     "ground-truth boxes")
    ev.add_argument("--results-file", default=None, help="detection: write the COCO results JSON here")
    ev.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    add_model_options(ev, None, "", device=False)
    ev.add_argument("--device", default="auto", help="auto (CUDA if available: cuda:LOCAL_RANK), cpu, cuda")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from ..evaluate import evaluate
    from ..train.distributed import env_world

    report = Report()
    model = load_model(args.model, args, report)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    result = evaluate(model, args.data, batch_size=args.batch_size, device=args.device, multi_scale=args.multi_scale,
                      det_file=args.det_file, ann_file=args.ann_file, views=args.views,
                      results_file=args.results_file)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if env_world()[0] != 0:  # under torchrun only rank 0 speaks
        return Report(quiet=True)
    report.data = result.to_dict()
    report.lines = result.lines()
    return report
