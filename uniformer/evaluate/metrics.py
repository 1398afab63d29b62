"""The metrics of the official evaluations: top-k accuracy (DeiT / SlowFast), mIoU / aAcc as
mmseg's ``mean_iou`` (ignore index 255, reduce-zero-label) and COCO AP through ``pycocotools``."""
from __future__ import annotations

import contextlib
import io
import json
from typing import Sequence

import numpy as np

__all__ = ["topk_accuracy", "reduce_zero_label", "intersect_and_union", "segmentation_metrics", "coco_evaluate",
           "COCO_STAT_NAMES", "COCO_KEYPOINT_STAT_NAMES"]

#: COCOeval.stats names for bbox / segm (12 values) and keypoints (10 values).
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
COCO_KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def topk_accuracy(topk: Sequence[Sequence[int]], labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in % (``'top1'``, ``'top5'``) of per-sample ranked class indices ``topk``
    ((N, >= max(ks)), best first) against ``labels`` (N,). Raises ValueError for no samples."""
    if not len(labels):
        raise ValueError("no samples to evaluate")
    hits = {k: sum(int(y in list(t)[:k]) for t, y in zip(topk, labels)) for k in ks}
    return {f"top{k}": 100.0 * hits[k] / len(labels) for k in ks}


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """ADE20K annotations (0 = 'other', 1..150 = classes) -> training ids: 0 becomes the ignore
    index 255 and every class moves down by one (mmseg's ``reduce_zero_label``)."""
    out = label.astype(np.int64) - 1
    out[label == 0] = 255
    out[label == 255] = 255
    return out


def intersect_and_union(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255
                        ) -> np.ndarray:
    """Per-class pixel counts of one image as mmseg's ``intersect_and_union``: pred / label (H, W)
    class ids, pixels whose label is ``ignore_index`` left out -> (4, num_classes) int64 rows
    (intersection, union, predicted area, label area). Raises ValueError for different shapes."""
    if pred.shape != label.shape:
        raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in shape")
    keep = label != ignore_index
    pred, label = pred[keep].astype(np.int64), label[keep].astype(np.int64)
    inter = np.bincount(label[pred == label], minlength=num_classes)[:num_classes]
    area_pred = np.bincount(pred[(pred >= 0) & (pred < num_classes)], minlength=num_classes)[:num_classes]
    area_label = np.bincount(label, minlength=num_classes)[:num_classes]
    return np.stack([inter, area_pred + area_label - inter, area_pred, area_label])


def segmentation_metrics(counts: np.ndarray) -> dict[str, float]:
    """mmseg's summary of summed :func:`intersect_and_union` counts (4, C): aAcc (all pixels),
    mIoU and mAcc (means over classes with label or prediction pixels: NaN classes left out), in %."""
    inter, union, _, area_label = counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
        acc = inter / area_label
    return {"aAcc": 100.0 * inter.sum() / area_label.sum(), "mIoU": 100.0 * float(np.nanmean(iou)),
            "mAcc": 100.0 * float(np.nanmean(acc))}


def coco_evaluate(gt, results: list[dict], iou_type: str, verbose: bool = False) -> dict[str, float]:
    """COCO AP of ``results`` (COCO result dicts) against ``gt`` (a ``pycocotools.coco.COCO`` or
    the path of an annotation JSON) with ``COCOeval`` ('bbox', 'segm' or 'keypoints'), on the
    images of ``gt`` -> {'AP': ..., 'AP50': ..., ...} in % (100 x ``COCOeval.stats``, as the paper
    prints them; -100 where COCO has no such objects). No results: every value 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = COCO_KEYPOINT_STAT_NAMES if iou_type == "keypoints" else COCO_STAT_NAMES
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco = gt if isinstance(gt, COCO) else COCO(str(gt))
        if not results:
            return {n: 0.0 for n in names}
        dt = coco.loadRes(json.loads(json.dumps(results)))  # a copy: loadRes adds fields in place
        ev = COCOeval(coco, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: 100.0 * float(v) for n, v in zip(names, ev.stats)}
