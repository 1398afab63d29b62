"""Evaluate a model on a benchmark with the official test protocol of its family (one module per
family, metrics in :mod:`.metrics`), in one process or sharded over ``torchrun`` processes with the
results gathered (each sample exactly once):

- image classification: :func:`evaluate_image` (ImageNet-style folder; top-1 / top-5)
- video classification: :func:`evaluate_video` (CSV list; top-1 / top-5 over the official views)
- semantic segmentation: :func:`evaluate_segmentation` (ADE20K layout; mIoU / aAcc, single or
  multi-scale + flip)
- detection / instance segmentation: :func:`evaluate_detection` (COCO layout; box / mask AP)
- pose: :func:`evaluate_pose` (COCO layout; keypoint AP, ground-truth boxes or detections)

:func:`evaluate` picks the family from the registry entry and puts the paper's number beside ours.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .coco import evaluate_detection, evaluate_pose
from .common import EvalResult
from .image import evaluate_image
from .segmentation import evaluate_segmentation
from .video import evaluate_video

__all__ = ["evaluate", "EvalResult", "evaluate_image", "evaluate_video", "evaluate_segmentation",
           "evaluate_detection", "evaluate_pose", "FAMILIES"]

#: registry task -> evaluation family.
FAMILIES = {"image-classification": "image", "video-classification": "video", "semantic-segmentation": "segmentation",
            "object-detection": "detection", "pose-estimation": "pose"}


def evaluate(model: nn.Module, data: str | Path, batch_size: int = 64, device: str = "auto",
             multi_scale: bool = False, det_file: str | Path | None = None, ann_file: str | Path | None = None,
             views: str | None = None, results_file: str | Path | None = None) -> EvalResult:
    """Evaluate ``model`` (from ``create_model``: its registry task picks the family) on ``data``
    with the family's official protocol; the result carries the paper's number for this checkpoint
    and protocol. Options apply to their family only: batch_size (image), views (video),
    multi_scale (segmentation), ann_file (COCO), results_file (detection), det_file (pose: person
    detections instead of ground-truth boxes).

    Raises ValueError (a model of no known task, a bad dataset layout) and what the family raises.
    """
    from ..registry import get_entry, paper_results

    name = getattr(model, "model_name", None)
    task = get_entry(name).task if name else None
    family = FAMILIES.get(task)
    if family is None:
        raise ValueError(f"{name or type(model).__name__} ({task}) is not a model evaluate knows; families: "
                         f"{', '.join(FAMILIES)}")
    if family == "image":
        result, protocol = evaluate_image(model, data, batch_size=batch_size, device=device), ""
    elif family == "video":
        result, protocol = evaluate_video(model, data, views=views, device=device), ""
    elif family == "segmentation":
        result = evaluate_segmentation(model, data, multi_scale=multi_scale, device=device)
        protocol = "multi-scale+flip" if multi_scale else "single-scale"
    elif family == "detection":
        result = evaluate_detection(model, data, ann_file=ann_file, device=device, results_file=results_file)
        protocol = ""
    else:
        result = evaluate_pose(model, data, det_file=det_file, ann_file=ann_file, device=device)
        protocol = "person detections" if det_file else "ground-truth boxes"
    result.paper = [p for p in paper_results(name) if p["protocol"] == protocol]
    return result
