"""COCO-layout datasets (an annotation JSON and its images) and the two COCO evaluations:
detection / instance segmentation (box and mask AP, mmdet's test: 1333x800, score >= 0.05, up to
100 per image) and top-down pose (keypoint AP with OKS, mmpose's test: ground-truth person boxes or
a detection-results JSON, rescoring and OKS-NMS 0.9). Both score with ``pycocotools``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .common import EvalResult, model_facts, progress_bar, run_sharded
from .metrics import coco_evaluate

__all__ = ["coco_files", "evaluate_detection", "evaluate_pose", "oks_nms", "pose_boxes"]

_DEFAULT_ANN = {"detection": "instances_val2017.json", "pose": "person_keypoints_val2017.json"}


def coco_files(root: str | Path, task: str, ann_file: str | Path | None = None) -> tuple[Path, Path]:
    """(annotation JSON, image folder) of a COCO-layout ``root``: ``annotations/instances_val2017.json``
    (detection) or ``annotations/person_keypoints_val2017.json`` (pose) unless ``ann_file`` is
    given, and ``val2017/`` (else ``images/``, else ``root``). Raises ValueError when missing."""
    root = Path(root)
    ann = Path(ann_file) if ann_file else root / "annotations" / _DEFAULT_ANN[task]
    if not ann.is_file():
        raise ValueError(f"no COCO annotation file {ann} (COCO layout: annotations/{_DEFAULT_ANN[task]} and "
                         f"val2017/; or pass the annotation file)")
    images = next((d for d in (root / "val2017", root / "images") if d.is_dir()), root)
    return ann, images


def _coco(ann: Path):
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann))


def evaluate_detection(model: torch.nn.Module, data: str | Path, ann_file: str | Path | None = None,
                       device: str = "auto", results_file: str | Path | None = None) -> EvalResult:
    """COCO box AP (and mask AP for Mask R-CNN) of a detector from ``create_model`` on the images of
    the COCO-layout folder ``data``, sharded over torchrun's processes; ``results_file``: also
    write the gathered COCO results JSON (rank 0). Metrics: 'bbox_AP', 'bbox_AP50', ...,
    'segm_AP', ... in % (100 x pycocotools' ``COCOeval.stats``). Raises ValueError (bad layout)."""
    from pycocotools import mask as mask_utils

    from ..tasks.detection import detect_objects

    ann, images = coco_files(data, "detection", ann_file)
    coco = _coco(ann)
    ids = sorted(coco.getImgIds())

    def work(indices, env):
        model.to(env.device).eval()
        out = []
        for i in progress_bar(indices, "evaluate", env.is_main):
            info = coco.loadImgs(ids[i])[0]
            res = detect_objects(model, str(images / info["file_name"]), device=env.device)
            dets = res.to_coco(image_id=ids[i], with_masks=res.masks is not None)
            for d in dets:
                d.pop("category_name", None)
                if "segmentation" in d:  # uncompressed -> compressed RLE, as mmdet writes its results
                    rle = mask_utils.frPyObjects(d["segmentation"], *d["segmentation"]["size"])
                    d["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            out.append((i, dets))
        return out

    per_image, env, seconds = run_sharded(len(ids), work, device)
    results = [d for dets in per_image for d in dets]
    metrics = {f"bbox_{k}": v for k, v in coco_evaluate(coco, results, "bbox").items()}
    if any("segmentation" in d for d in results):
        metrics.update({f"segm_{k}": v for k, v in coco_evaluate(coco, results, "segm").items()})
    if results_file and env.is_main:
        Path(results_file).write_text(json.dumps(results))
    name, weights = model_facts(model)
    scale = "x".join(map(str, model.cfg.test_scale))
    return EvalResult(name, weights, "detection", str(data), metrics, len(ids),
                      f"keep-ratio resize to {scale}, score >= {model.cfg.rcnn.score_thr}, "
                      f"up to {model.cfg.rcnn.max_per_img} per image; pycocotools on {ann.name}",
                      world_size=env.world_size, seconds=seconds, extra={"detections": len(results)})


def pose_boxes(coco, det_file: str | Path | None = None, det_thr: float = 0.0) -> dict[int, list[tuple]]:
    """Person boxes per image id: [(x, y, w, h), score] lists. Ground truth (``det_file`` None):
    every person annotation with a positive area and any labelled keypoint, score 1 (mmpose's
    ``use_gt_bbox``); else the category-1 results of ``det_file`` scoring above ``det_thr``.
    Raises ValueError for a detection file that is not a COCO results list."""
    boxes: dict[int, list[tuple]] = {i: [] for i in coco.getImgIds()}
    if det_file is None:
        for a in coco.loadAnns(coco.getAnnIds(catIds=[1], iscrowd=False)):
            if a.get("num_keypoints", 0) > 0 and max(a["keypoints"]) > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0:
                boxes[a["image_id"]].append((tuple(a["bbox"]), 1.0))
        return boxes
    dets = json.loads(Path(det_file).read_text())
    if not isinstance(dets, list):
        raise ValueError(f"{det_file} is not a COCO detection results list")
    for d in dets:
        if d.get("category_id") == 1 and d["score"] > det_thr and d["image_id"] in boxes and min(d["bbox"][2:]) > 0:
            boxes[d["image_id"]].append((tuple(d["bbox"]), float(d["score"])))
    return boxes


def _oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """mmpose's ``oks_iou``: OKS of keypoints ``g`` (K*3,) against each row of ``d`` (N, K*3)."""
    var = (sigmas * 2) ** 2
    xg, yg = g[0::3], g[1::3]
    dx, dy = d[:, 0::3] - xg, d[:, 1::3] - yg
    e = (dx ** 2 + dy ** 2) / var / ((area_g + area_d[:, None]) / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(1)


def oks_nms(results: list[dict], sigmas, thr: float = 0.9) -> list[dict]:
    """mmpose's ``oks_nms`` over one image's pose results (each with 'keypoints' (K*3), 'score',
    'area'): keep the best-scoring, drop those with OKS > ``thr`` to a kept one -> the kept ones."""
    if not results:
        return []
    order = np.argsort([-r["score"] for r in results], kind="stable")
    kpts = np.array([r["keypoints"] for r in results], dtype=np.float64)
    areas = np.array([r["area"] for r in results], dtype=np.float64)
    sig = np.asarray(sigmas, dtype=np.float64)
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        ious = _oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sig)
        order = order[1:][ious <= thr]
    return [results[i] for i in keep]


def evaluate_pose(model: torch.nn.Module, data: str | Path, det_file: str | Path | None = None,
                  ann_file: str | Path | None = None, device: str = "auto", flip_test: bool | None = None,
                  vis_thr: float = 0.2, nms_thr: float = 0.9) -> EvalResult:
    """COCO keypoint AP (OKS, %) of a top-down pose model from ``create_model`` on a COCO-layout
    folder, with ground-truth person boxes (``det_file`` None) or those of a detection-results JSON,
    as mmpose's test: flip test (model default), each person's score = box score x mean of its joint
    scores above ``vis_thr``, OKS-NMS at ``nms_thr`` per image; sharded over torchrun's processes.
    Raises ValueError (bad layout or detection file)."""
    from ..tasks.pose import estimate_pose

    ann, images = coco_files(data, "pose", ann_file)
    coco = _coco(ann)
    boxes = pose_boxes(coco, det_file)
    ids = sorted(i for i, b in boxes.items() if b)
    sigmas = None

    def work(indices, env):
        nonlocal sigmas
        model.to(env.device).eval()
        out = []
        for i in progress_bar(indices, "evaluate", env.is_main):
            info = coco.loadImgs(ids[i])[0]
            given = boxes[ids[i]]
            res = estimate_pose(model, str(images / info["file_name"]), [b for b, _ in given], flip_test=flip_test,
                                device=env.device)
            sigmas = res.keypoint_info.sigmas
            found = []
            for person, (_, box_score) in zip(res.persons, given):
                s = person.scores
                kpt_score = float(s[s > vis_thr].mean()) if (s > vis_thr).any() else 0.0
                found.append({"image_id": ids[i], "category_id": 1, "score": kpt_score * box_score,
                              "keypoints": [float(v) for kp, sc in zip(person.keypoints, s) for v in (*kp, sc)],
                              "area": float(np.prod(person.scale * 200))})
            out.append((i, oks_nms(found, sigmas, nms_thr)))
        return out

    per_image, env, seconds = run_sharded(len(ids), work, device)
    results = [{k: v for k, v in r.items() if k != "area"} for rs in per_image for r in rs]
    metrics = coco_evaluate(coco, results, "keypoints")
    name, weights = model_facts(model)
    flip = model.cfg.flip_test if flip_test is None else flip_test
    boxes_from = "ground-truth person boxes" if det_file is None else f"person detections of {Path(det_file).name}"
    return EvalResult(name, weights, "pose", str(data), metrics, len(ids),
                      f"{boxes_from}; input {model.cfg.image_size[0]}x{model.cfg.image_size[1]}, flip test "
                      f"{'on' if flip else 'off'}, rescoring above {vis_thr}, OKS-NMS {nms_thr}",
                      world_size=env.world_size, seconds=seconds,
                      extra={"persons": sum(len(b) for b in boxes.values())})
