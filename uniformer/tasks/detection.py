"""Object detection and instance segmentation with the official mmdet 2.11 test pipeline, as pure
functions (docs/dense.md §5; paper §6.3, COCO val2017 single-scale box / mask AP).

Pipeline:

1. decode the image to 8-bit RGB (:func:`uniformer.data.load_image`);
2. resize keep-ratio to fit ``test_scale`` = (1333, 800) (mmcv ``imrescale``: factor =
   min(1333 / long side, 800 / short side), sides ``int(x * factor + 0.5)``, bilinear on 8-bit
   values); ``scale_factor`` = (new_w / w, new_h / h) per axis;
3. normalize (mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375) on 0-255 RGB), then pad
   bottom/right with zeros to multiples of 32;
4. :meth:`UniFormerDetector.predict`: RPN proposals, RoI heads, class-wise NMS, boxes divided by
   the scale factor, masks pasted into the original image and binarized at 0.5.

:func:`detect_objects` returns a :class:`DetectionResult` that is filtered (score threshold, classes)
without rerunning the network, drawn (:func:`draw_detections`) and exported as COCO-style results
(:meth:`DetectionResult.to_coco`).
"""
from __future__ import annotations

import colorsys
import dataclasses
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..data import load_image
from ..data.labels import read_label_file
from ..hub import WeightsInfo
from ..inference import RunInfo, autocast, resolve_precision
from .common import scale_for_short_side, require_model, stage3_run, test_scale
from .segmentation import rescale_size, resize_uint8
from .visualize import load_font

__all__ = ["DETECTION_STEPS", "DetectionInput", "preprocess_detection", "PackedMasks", "detection_scale",
           "DetectionResult", "detect_objects", "draw_detections",
           "mask_to_rle", "coco_category_ids", "class_colors"]


#: The steps :func:`detect_objects` times (keys of ``DetectionResult.times``), in pipeline order,
#: with what each does.
DETECTION_STEPS = {"preprocess": "preprocessing (resize, normalize, pad)", "backbone": "backbone (UniFormer)",
                   "neck": "neck (FPN)", "rpn": "RPN (anchors, proposals, NMS)",
                   "roi_heads": "RoI heads (boxes, class-wise NMS, masks)", "paste": "mask pasting"}


@dataclass(frozen=True)
class DetectionInput:
    """A preprocessed image: ``tensor`` (1, 3, H_pad, W_pad) normalized and zero-padded;
    ``image_size`` (W, H) of the original; ``input_size`` (w, h) after the resize (before padding);
    ``scale_factor`` (w_scale, h_scale, w_scale, h_scale)."""

    tensor: torch.Tensor
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_factor: tuple[float, float, float, float]


def preprocess_detection(image: Image.Image, pretrained_cfg, scale: tuple[int, int] = (1333, 800),
                         size_divisor: int = 32) -> DetectionInput:
    """mmdet's test transforms (Resize keep-ratio, Normalize, Pad) on an RGB PIL image, with
    ``pretrained_cfg.mean/std`` (of [0, 1] values) -> :class:`DetectionInput`."""
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)  # (3, H, W)
    w, h = image.size
    new_w, new_h = rescale_size((w, h), scale)
    x = resize_uint8(rgb, (new_w, new_h))
    mean = torch.tensor(pretrained_cfg.mean).view(3, 1, 1) * 255
    std = torch.tensor(pretrained_cfg.std).view(3, 1, 1) * 255
    x = (x - mean) / std
    pad_h = -new_h % size_divisor if size_divisor else 0
    pad_w = -new_w % size_divisor if size_divisor else 0
    x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros right / bottom, after normalization
    # mmdet stores the factors as float32
    ws, hs = float(np.float32(new_w / w)), float(np.float32(new_h / h))
    return DetectionInput(x[None].contiguous(), (w, h), (new_w, new_h), (ws, hs, ws, hs))


@lru_cache(maxsize=None)
def coco_category_ids() -> tuple[int, ...]:
    """The standard COCO 2017 category id of each of the 80 contiguous labels (1..90 with gaps)."""
    return tuple(json.loads(read_label_file("coco_80.json"))["coco_category_ids"])


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` well-separated RGB colours (golden-ratio hues), one per class."""
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)) for i in range(n)]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Binary mask (H, W) -> COCO uncompressed RLE ``{'size': [H, W], 'counts': [...]}``: run
    lengths of the column-major (Fortran-order) pixels, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


@dataclass(frozen=True)
class PackedMasks:
    """Bool masks (K, H, W) stored bit-packed along the width: ``bits`` (K, H, ceil(W / 8)) uint8,
    ``width`` W pixels. One eighth of the memory of the bool masks."""

    bits: np.ndarray
    width: int

    @classmethod
    def pack(cls, masks: np.ndarray | None) -> "PackedMasks | None":
        """Pack (K, H, W) bool masks; None stays None (a detector without a mask head)."""
        return None if masks is None else cls(np.packbits(masks, axis=-1), int(masks.shape[-1]))

    def unpack(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), H, W) bool masks of detections ``idx``."""
        return np.unpackbits(self.bits[np.asarray(idx, dtype=np.int64)], axis=-1, count=self.width).astype(bool)


def detection_scale(short_side: int) -> tuple[int, int]:
    """(long, short) bound of the keep-ratio test resize for a short side of ``short_side`` pixels:
    the official (1333, 800) scaled proportionally (512 -> (853, 512)), what ``detect_objects``'s
    ``scale`` takes. Raises ValueError for a short side that is not a positive whole number."""
    return scale_for_short_side(short_side, 1333 / 800)


@dataclass
class DetectionResult:
    """The detections of one image and what produced them.

    boxes: (K, 4) float32 ``(x1, y1, x2, y2)`` in original-image pixels; scores: (K,) float32;
    labels: (K,) int64 class indices, by decreasing score; masks: (K, H, W) bool or None (no mask
    head); class_names: the label set (80 COCO names); image_size / input_size: (w, h) of the
    original and of the resized network input (before padding); times: milliseconds per step
    ('preprocess', 'backbone', 'neck', 'rpn', 'roi_heads', 'paste'); num_proposals: RPN output count.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    model_name: str
    weights: WeightsInfo
    device: str
    precision: str
    stage3_attention: str
    times: dict[str, float]
    num_proposals: int
    extra: dict = field(default_factory=dict)

    @property
    def run_info(self) -> RunInfo:
        """What produced this result (:func:`uniformer.inference.describe_run` shows it): the
        inference is the network (backbone, neck, RPN, RoI heads), preprocessing and mask pasting
        come around it."""
        network = ("backbone", "neck", "rpn", "roi_heads")
        around = {"preprocess": "preprocessing", "paste": "mask pasting"}
        return RunInfo(self.model_name, self.weights, self.device, self.precision,
                       float(sum(self.times.get(k, 0.0) for k in network)),
                       tuple((around.get(k, k), ms) for k, ms in self.times.items() if k not in network))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, score_thr: float = 0.0, classes: Iterable[int | str] | None = None,
               exclude: Iterable[int | str] = ()) -> np.ndarray:
        """Indices of detections with score >= ``score_thr``, class in ``classes`` (indices or
        names; None: all) and not in ``exclude``, in score order. Raises ValueError for an unknown
        class name."""
        keep = self.scores >= score_thr
        if classes is not None:
            keep &= np.isin(self.labels, self._class_ids(classes))
        exclude = self._class_ids(exclude)
        if exclude:
            keep &= ~np.isin(self.labels, exclude)
        return np.flatnonzero(keep)

    def _class_ids(self, classes: Iterable[int | str]) -> list[int]:
        ids = set()
        for c in classes:
            if isinstance(c, str):
                if c not in self.class_names:
                    raise ValueError(f"unknown class {c!r}")
                ids.add(self.class_names.index(c))
            else:
                ids.add(int(c))
        return sorted(ids)

    def class_counts(self, score_thr: float = 0.0) -> dict[int, int]:
        """{class index: number of detections with score >= ``score_thr``}, the class of the best
        detection first (the order of a class filter)."""
        counts: dict[int, int] = {}
        for i in self.select(score_thr):
            counts[int(self.labels[i])] = counts.get(int(self.labels[i]), 0) + 1
        return counts

    def rows(self, size: tuple[int, int] | None = None) -> list[dict]:
        """One dict per detection, in order, for a table: ``class`` (name), ``score``, box ``x1``,
        ``y1``, ``x2``, ``y2`` and mask area ``mask_px`` (None without masks), in the pixels of the
        same photo at ``size`` = (w, h) (default: ``image_size``); areas scale with the pixel count."""
        size = tuple(size or self.image_size)
        boxes = self.boxes_in(size)
        scale = (size[0] * size[1]) / (self.image_size[0] * self.image_size[1])
        areas = None if self.masks is None else self.masks.sum(axis=(1, 2)) * scale
        return [{"class": self.class_names[self.labels[i]], "score": float(self.scores[i]),
                 **dict(zip(("x1", "y1", "x2", "y2"), (float(v) for v in boxes[i]))),
                 "mask_px": None if areas is None else int(round(float(areas[i])))} for i in range(len(self))]

    def person_boxes(self, score_thr: float = 0.5) -> list[tuple[float, float, float, float]]:
        """Boxes ``(x, y, w, h)`` of the 'person' detections with score >= ``score_thr`` (for the
        top-down pose model, which needs person boxes)."""
        return [(float(x1), float(y1), float(x2 - x1), float(y2 - y1))
                for x1, y1, x2, y2 in self.boxes[self.select(score_thr, ["person"])]]

    def total_ms(self) -> float:
        """Milliseconds of every step together (see :data:`DETECTION_STEPS`)."""
        return float(sum(self.times.values()))

    def boxes_in(self, size: tuple[int, int]) -> np.ndarray:
        """(K, 4) float32 boxes ``(x1, y1, x2, y2)`` in the pixels of the same photo at ``size`` =
        (w, h) (e.g. the original upload when the detector ran on a downscaled copy)."""
        fx, fy = size[0] / self.image_size[0], size[1] / self.image_size[1]
        return (self.boxes * np.asarray([fx, fy, fx, fy], dtype=np.float32)).astype(np.float32)

    def rescaled(self, size: tuple[int, int], with_masks: bool = True) -> "DetectionResult":
        """The same detections in the pixels of the photo at ``size`` = (w, h): boxes scaled
        (:meth:`boxes_in`), masks resized with nearest neighbour (K, h, w) or dropped
        (``with_masks=False``: None, cheaper when only boxes are needed), ``image_size`` = size.
        Returns ``self`` when the size is already the result's and masks are kept."""
        size = (int(size[0]), int(size[1]))
        if size == tuple(self.image_size) and with_masks:
            return self
        masks = None
        if self.masks is not None and with_masks:
            masks = np.stack([np.asarray(Image.fromarray(m).resize(size, Image.NEAREST)) for m in self.masks]) \
                if len(self.masks) else np.zeros((0, size[1], size[0]), dtype=bool)
        return dataclasses.replace(self, boxes=self.boxes_in(size), masks=masks, image_size=size)

    def to_coco(self, image_id: int = 0, score_thr: float = 0.0, classes: Iterable[int | str] | None = None,
                with_masks: bool = True) -> list[dict]:
        """COCO results format: one dict per detection with ``image_id``, ``category_id`` (standard
        COCO id), ``bbox`` [x, y, w, h] (pixels), ``score``, and ``segmentation`` (uncompressed RLE)
        when masks exist and ``with_masks``; plus ``category_name`` for readability."""
        ids = coco_category_ids() if len(self.class_names) == 80 else tuple(range(1, len(self.class_names) + 1))
        out = []
        for i in self.select(score_thr, classes):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            item = {"image_id": image_id, "category_id": int(ids[self.labels[i]]),
                    "category_name": self.class_names[self.labels[i]],
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "score": round(float(self.scores[i]), 5)}
            if with_masks and self.masks is not None:
                item["segmentation"] = mask_to_rle(self.masks[i])
            out.append(item)
        return out

    def subset(self, idx: np.ndarray, masks: "PackedMasks | None" = None) -> "DetectionResult":
        """The result restricted to detections ``idx`` (indices into this result), masks taken from
        ``masks`` (a compact copy, see :meth:`compact`) when given, else from ``self.masks``."""
        idx = np.asarray(idx, dtype=np.int64)
        kept = masks.unpack(idx) if masks is not None else (None if self.masks is None else self.masks[idx])
        return dataclasses.replace(self, boxes=self.boxes[idx], scores=self.scores[idx], labels=self.labels[idx],
                                   masks=kept)

    def compact(self) -> "tuple[DetectionResult, PackedMasks | None]":
        """(this result without masks, its masks bit-packed or None): what to keep between redraws of
        one photo. Masks are one bool per pixel per detection (100 masks of a 2048x1536 photo: 300 MB);
        packed they take 1/8 of that, and :meth:`subset` unpacks only the detections it shows."""
        return dataclasses.replace(self, masks=None), PackedMasks.pack(self.masks)

    def to_dict(self) -> dict:
        """JSON-ready summary without masks: settings, timings, weights and the detections."""
        return {"model_name": self.model_name, "weights": self.weights.describe(), "device": self.device,
                "precision": self.precision, "image_size": list(self.image_size),
                "input_size": list(self.input_size), "stage3_attention": self.stage3_attention,
                "times_ms": dict(self.times), "num_proposals": self.num_proposals,
                "detections": self.to_coco(with_masks=False)}


def _pretrained_cfg(model: torch.nn.Module):
    from ..registry import PretrainedCfg

    return getattr(model, "pretrained_cfg", None) or PretrainedCfg(label_set="coco-80", num_classes=80)


@torch.inference_mode()
def detect_objects(model: torch.nn.Module, image, score_thr: float | None = None, stage3_attention: str | None = None,
                   window_size: int | None = None, scale: Sequence[int] | None = None,
                   device: str | torch.device | None = None, precision: str = "fp32") -> DetectionResult:
    """Detect and segment the objects of one image with a detector from ``create_model`` (e.g.
    'mask_rcnn_1x_hybrid_small').

    image: path, bytes, PIL image or array. score_thr: second-stage score threshold (default the
    official 0.05; lower keeps more candidates for interactive filtering). stage3_attention /
    window_size: run stage 3 'global', 'window' or 'hybrid' on a twin sharing the weights. scale:
    (long, short) resize bound (default (1333, 800)). The model is moved to ``device``. precision:
    'fp32', 'bf16', 'fp16' (CUDA) or 'auto' (the device's default: bf16 where it is native,
    :func:`uniformer.precision.default_precision`); the result records the one used.

    Masks are pasted at the original image size, one byte per pixel and detection (up to 100), so
    shrink very large photos first if memory matters (the network never sees more than 1333x800).

    Raises ImageDecodeError (bad image), ValueError (not a detector; bad threshold, scale, mode,
    precision or device).
    """
    from ..models.detection import UniFormerDetector

    require_model(model, UniFormerDetector, "detect_objects", "mask_rcnn_1x_hybrid_small")
    cfg = model.cfg
    rcnn = cfg.rcnn
    if score_thr is not None:
        if not 0.0 <= float(score_thr) <= 1.0:
            raise ValueError(f"score_thr must be in [0, 1], got {score_thr}")
        rcnn = dataclasses.replace(rcnn, score_thr=float(score_thr))
    scale = test_scale(scale, cfg.test_scale)
    pcfg = _pretrained_cfg(model)
    run, dev = stage3_run(model, stage3_attention, window_size, device)
    precision = resolve_precision(precision, dev)
    t0 = time.perf_counter()
    img = load_image(image)
    inp = preprocess_detection(img, pcfg, scale, cfg.size_divisor)
    x = inp.tensor.to(dev)
    t1 = time.perf_counter()
    with autocast(dev, precision):
        out = run.predict(x, [(inp.input_size[1], inp.input_size[0])], [inp.scale_factor],
                          [(inp.image_size[1], inp.image_size[0])], rcnn=rcnn)
    det = out.detections[0]
    times = {"preprocess": (t1 - t0) * 1000, **out.times}
    return DetectionResult(
        boxes=det.boxes.cpu().numpy(), scores=det.scores.cpu().numpy(), labels=det.labels.cpu().numpy(),
        masks=None if det.masks is None else det.masks.cpu().numpy(), class_names=pcfg.class_names(),
        image_size=inp.image_size, input_size=inp.input_size,
        model_name=getattr(model, "model_name", type(model).__name__),
        weights=getattr(model, "weights_info", WeightsInfo("untrained")), device=str(dev), precision=precision,
        stage3_attention=run.cfg.backbone.stage3_attention, times=times, num_proposals=len(out.proposals[0]))


def draw_detections(image: Image.Image, result: DetectionResult, score_thr: float = 0.3,
                    classes: Iterable[int | str] | None = None, mask_opacity: float = 0.45,
                    show_masks: bool = True, show_labels: bool = True) -> Image.Image:
    """``image`` (the original, size ``result.image_size``) with the selected detections: masks
    blended in their class colour, boxes outlined, ``name score`` labels. Raises ValueError for a
    size mismatch or an opacity outside [0, 1]."""
    if not 0.0 <= mask_opacity <= 1.0:
        raise ValueError(f"mask_opacity must be in [0, 1], got {mask_opacity}")
    if tuple(image.size) != tuple(result.image_size):
        raise ValueError(f"image {image.size} is not the detected image {result.image_size}")
    idx = result.select(score_thr, classes)
    colors = class_colors(len(result.class_names))
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if show_masks and result.masks is not None:
        for i in idx[::-1]:  # best on top
            m = result.masks[i]
            rgb[m] = rgb[m] * (1 - mask_opacity) + np.asarray(colors[result.labels[i]], np.float32) * mask_opacity
    out = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    side = max(out.size)
    lw = max(2, round(side / 400))
    font = load_font(max(10, round(side / 60)))
    for i in idx:
        x1, y1, x2, y2 = (float(v) for v in result.boxes[i])
        color = colors[result.labels[i]]
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=(0, 0, 0), width=lw + 2)
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=lw)
        if show_labels:
            text = f"{result.class_names[result.labels[i]]} {result.scores[i]:.2f}"
            draw.text((x1 + lw + 1, y1 + lw), text, fill=color, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return out
