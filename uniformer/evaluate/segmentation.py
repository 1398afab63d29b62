"""Semantic segmentation on an ADE20K-layout folder (``images/validation/*.jpg`` beside
``annotations/validation/*.png``; 150 classes, annotation 0 = ignored, reduce-zero-label as mmseg):
mIoU / aAcc / mAcc, single-scale (keep-ratio resize to 2048x512) or the official multi-scale +
flip test (ratios 0.5-1.75 of 2048x512, each also flipped, softmax averaged, mmseg ``aug_test``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import EvalResult, model_facts, progress_bar, run_sharded

__all__ = ["ade20k_samples", "evaluate_segmentation", "MS_RATIOS", "segment_multiscale"]

#: mmseg's ADE20K ``img_ratios`` of the multi-scale test.
MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def ade20k_samples(root: str | Path, split: str = "validation") -> list[tuple[str, str]]:
    """(image, annotation) pairs of an ADE20K-layout folder, matched by file stem and sorted:
    ``root/images/<split>/*.jpg`` and ``root/annotations/<split>/*.png`` (``root`` may also be
    ADEChallengeData2016's parent). Raises ValueError when the layout or an annotation is missing."""
    root = Path(root)
    if not (root / "images").is_dir() and (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    images, annotations = root / "images" / split, root / "annotations" / split
    if not images.is_dir() or not annotations.is_dir():
        raise ValueError(f"{root} is not in ADE20K layout: expected images/{split}/ and annotations/{split}/")
    pairs = []
    for img in sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        ann = annotations / (img.stem + ".png")
        if not ann.is_file():
            raise ValueError(f"{img.name} has no annotation {ann}")
        pairs.append((str(img), str(ann)))
    if not pairs:
        raise ValueError(f"no images in {images}")
    return pairs


@torch.inference_mode()
def segment_multiscale(model: torch.nn.Module, image, ratios=MS_RATIOS, flip: bool = True,
                       device: torch.device | str = "cpu") -> np.ndarray:
    """mmseg's ``aug_test`` of one PIL image: for each ratio r, keep-ratio resize to
    (2048 r, 512 r) (the model's ``test_scale`` times r), logits resized to the input then to the
    image, softmax; with ``flip`` also the horizontally flipped input (flipped back); the softmax
    maps averaged -> (H, W) int64 class ids."""
    from ..tasks.segmentation import _pretrained_cfg, preprocess_segmentation, resize_logits

    cfg, pcfg = model.cfg, _pretrained_cfg(model)
    W, H = image.size
    total = None
    n = 0
    for r in ratios:
        scale = (int(cfg.test_scale[0] * r), int(cfg.test_scale[1] * r))
        x = preprocess_segmentation(image, pcfg, scale, cfg.test_size_divisor).tensor.to(device)
        for flipped in (False, True) if flip else (False,):
            inp = x.flip(-1) if flipped else x
            logits = resize_logits(resize_logits(model(inp).float(), inp.shape[-2:]), (H, W))
            probs = logits.softmax(1)[0]
            probs = probs.flip(-1) if flipped else probs
            total = probs if total is None else total + probs
            n += 1
    return (total / n).argmax(0).cpu().numpy()


def evaluate_segmentation(model: torch.nn.Module, data: str | Path, multi_scale: bool = False, device: str = "auto",
                          split: str = "validation") -> EvalResult:
    """mIoU / aAcc / mAcc (%) of a segmentor from ``create_model`` on the ADE20K-layout folder
    ``data`` (see :func:`ade20k_samples`), single-scale or ``multi_scale`` + flip, sharded over
    torchrun's processes. Raises ValueError (bad layout, an annotation of another size)."""
    from PIL import Image

    from ..data import load_image
    from ..tasks.segmentation import segment_image
    from .metrics import intersect_and_union, reduce_zero_label, segmentation_metrics

    samples = ade20k_samples(data, split)
    num_classes = model.cfg.num_classes if hasattr(model.cfg, "num_classes") else 150

    def work(indices, env):
        model.to(env.device).eval()
        out = []
        for i in progress_bar(indices, "evaluate", env.is_main):
            img_path, ann_path = samples[i]
            image = load_image(img_path)
            if multi_scale:
                pred = segment_multiscale(model, image, device=env.device)
            else:
                pred = segment_image(model, image, device=env.device).mask.astype(np.int64)
            label = reduce_zero_label(np.asarray(Image.open(ann_path)))
            out.append((i, intersect_and_union(pred, label, num_classes)))
        return out

    counts, env, seconds = run_sharded(len(samples), work, device)
    name, weights = model_facts(model)
    metrics = segmentation_metrics(np.sum(counts, axis=0))
    scale = "x".join(map(str, model.cfg.test_scale))
    protocol = (f"multi-scale ratios {list(MS_RATIOS)} of {scale} + flip, softmax averaged" if multi_scale else
                f"single scale: keep-ratio resize to {scale}") + "; reduce-zero-label, ignore 255"
    return EvalResult(name, weights, "segmentation", str(data), metrics, len(samples), protocol,
                      world_size=env.world_size, seconds=seconds)
