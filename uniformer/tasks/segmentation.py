"""Semantic segmentation with the official mmseg 0.13 test-time pipeline, as pure functions.

Pipeline (docs/dense.md §5; paper §4.3, ADE20K single-scale mIoU):

1. decode the image to 8-bit RGB (:func:`uniformer.data.load_image`);
2. resize keep-ratio to fit ``test_scale`` = (2048, 512): factor = min(2048 / long side,
   512 / short side), new size ``int(x * factor + 0.5)`` (mmcv ``imrescale``), bilinear, result
   rounded to 8 bits (mmcv resizes the uint8 image); no padding;
   FPN models only (``test_size_divisor=32``, AlignResize): a second resize that *stretches* to the
   next multiples of 32;
3. normalize with the ImageNet mean/std (mmseg's 0-255 values /255);
4. logits at 1/4 resolution -> bilinear (align_corners False) to the network-input size -> bilinear
   again to the original image size -> softmax -> argmax.

``segment_image(model, image)`` runs it and returns a :class:`SegmentationResult`. Differences from
the official code: OpenCV's fixed-point bilinear resize (1/32-pixel coordinate and weight
quantization) is computed in float here, so a few input values may differ by one grey level.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data import get_labels, load_image
from ..data.labels import get_palette
from ..hub import WeightsInfo
from ..inference import RunInfo, autocast, synchronize
from .common import require_model, scale_for_short_side, stage3_run, test_scale
from ..models.uniformer import stage3_window_sizes

__all__ = ["rescale_size", "test_input_size", "resize_uint8", "MIN_INPUT_SIDE", "SegmentationInput",
           "preprocess_segmentation",
           "resize_logits", "logits_to_mask", "stage3_grid", "stage3_window_boxes", "ClassArea",
           "SegmentationResult", "segment_image", "segmentation_scale", "STAGE3_MODES", "ModeComparison",
           "compare_stage3_modes"]


def rescale_size(size: tuple[int, int], scale: tuple[int, int] = (2048, 512)) -> tuple[int, int]:
    """mmcv ``rescale_size``: the (width, height) of an image of ``size`` (w, h) resized, keeping its
    aspect ratio, to the largest size whose long side <= max(scale) and short side <= min(scale).

    factor = min(max(scale) / max(w, h), min(scale) / min(w, h)); each side -> int(side * factor + 0.5).
    Raises ValueError for a non-positive size or scale.
    """
    w, h = size
    if w <= 0 or h <= 0 or min(scale) <= 0:
        raise ValueError(f"sizes must be positive, got size {size} and scale {scale}")
    factor = min(max(scale) / max(w, h), min(scale) / min(w, h))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def segmentation_scale(short_side: int) -> tuple[int, int]:
    """(long, short) bound of the keep-ratio test resize for a short side of ``short_side`` pixels:
    the official (2048, 512) rule, long side 4x the short side (384 -> (1536, 384)), what
    ``segment_image``'s ``scale`` takes. Raises ValueError for a short side that is not a positive
    number of pixels."""
    return scale_for_short_side(short_side, 4)


def test_input_size(size: tuple[int, int], scale: tuple[int, int] = (2048, 512),
                    size_divisor: int | None = None) -> tuple[int, int]:
    """Network-input (width, height) of an image of ``size`` (w, h) under the official test resize:
    :func:`rescale_size`, then, with ``size_divisor`` (FPN's AlignResize), each side rounded *up*
    to a multiple of it (a stretch, no padding)."""
    w, h = rescale_size(size, scale)
    if size_divisor:
        w, h = (int(math.ceil(s / size_divisor)) * size_divisor for s in (w, h))
    return w, h


def resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an 8-bit image, as OpenCV's INTER_LINEAR (half-pixel centres, no
    antialiasing, edge replication), rounded back to 0-255. (3, H, W) float with integer values ->
    (3, size[1], size[0]) float with integer values. An image already of ``size`` is returned as is."""
    if (image.shape[-1], image.shape[-2]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=(size[1], size[0]), mode="bilinear", align_corners=False)[0]
    return out.round().clamp(0, 255)


@dataclass(frozen=True)
class SegmentationInput:
    """A preprocessed image: ``tensor`` (1, 3, h', w') normalized float32; ``image_size`` (W, H) of
    the original, ``input_size`` (w, h) of the resized image, at the top left of the tensor: the
    tensor is larger (h' >= h, w' >= w, padded with the mean colour, 0 after normalization) only
    where a side was under the network's minimum (see :func:`preprocess_segmentation`)."""

    tensor: torch.Tensor
    image_size: tuple[int, int]
    input_size: tuple[int, int]


#: Smallest network input side (pixels) a UniFormer backbone takes: its total stride (stem 4, then three
#: 2x2 patch embeddings), so that every stage keeps at least one token.
MIN_INPUT_SIDE = 32


def preprocess_segmentation(image: Image.Image, pretrained_cfg, scale: tuple[int, int] = (2048, 512),
                            size_divisor: int | None = None, min_side: int = MIN_INPUT_SIDE) -> SegmentationInput:
    """Resize (keep-ratio to ``scale``; then align to ``size_divisor`` if given) and normalize an
    RGB PIL image with ``pretrained_cfg.mean/std`` (of [0, 1] values) -> :class:`SegmentationInput`.

    A side the resize leaves under ``min_side`` pixels (a 3000x8 strip becomes 2048x5 under
    (2048, 512)) is padded right / bottom with the mean colour up to ``min_side``, so the backbone's
    patch embeddings keep a token per stage; :func:`logits_to_mask` crops the padding off again.
    Images the official protocol handles are not padded (the same tensor as before)."""
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)  # (3, H, W)
    w, h = image.size
    x = resize_uint8(rgb, rescale_size((w, h), scale))
    if size_divisor:
        x = resize_uint8(x, test_input_size((w, h), scale, size_divisor))
    mean = torch.tensor(pretrained_cfg.mean).view(3, 1, 1) * 255
    std = torch.tensor(pretrained_cfg.std).view(3, 1, 1) * 255
    x = (x - mean) / std  # (3, h, w)
    content = (x.shape[-1], x.shape[-2])
    pad_w, pad_h = max(0, min_side - content[0]), max(0, min_side - content[1])
    if pad_w or pad_h:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # (3, max(h, min_side), max(w, min_side)), 0 = the mean colour
    return SegmentationInput(x[None].contiguous(), (w, h), content)


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners False) resize of logits (B, C, h, w) to ``size`` = (H, W), as mmseg's
    ``resize``."""
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _strip_grid(out_hw: tuple[int, int], in_hw: tuple[int, int], rows: range, device) -> torch.Tensor:
    """grid_sample grid for output rows ``rows`` of a bilinear align_corners=False resize in_hw -> out_hw."""
    (H, W), (h, w) = out_hw, in_hw
    ys = (torch.arange(rows.start, rows.stop, device=device, dtype=torch.float64) + 0.5) * (h / H) - 0.5
    xs = (torch.arange(W, device=device, dtype=torch.float64) + 0.5) * (w / W) - 0.5
    ys, xs = ys.clamp(0, h - 1), xs.clamp(0, w - 1)  # interpolate clamps the source coordinate
    gy = (2 * ys + 1) / h - 1
    gx = (2 * xs + 1) / w - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (rows, W, 2) as (x, y)
    return grid[None].float()


def logits_to_mask(logits: torch.Tensor, input_hw: tuple[int, int], image_hw: tuple[int, int],
                   max_elements: int = 2 ** 26, content_hw: tuple[int, int] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The official two resizes then softmax / argmax: logits (1, C, h/4, w/4) -> bilinear to
    ``input_hw`` -> bilinear to ``image_hw`` -> (class map (H, W) int64, max probability (H, W) float32).
    ``content_hw``: (h, w) of the image inside a padded input (:func:`preprocess_segmentation`),
    cropped from the top left after the first resize (None: the whole input).

    When the full-size (C, H, W) probability volume would exceed ``max_elements`` values, the second
    resize is computed in horizontal strips with ``grid_sample`` (the same bilinear formula), so
    large photos need no gigabytes.
    """
    logits = resize_logits(logits.float(), input_hw)
    if content_hw is not None and tuple(content_hw) != tuple(logits.shape[-2:]):
        logits = logits[..., :content_hw[0], :content_hw[1]]  # (1, C, h, w): the padding cropped off
    if logits.shape[-2:] == tuple(image_hw):
        probs = logits.softmax(1)[0]
        conf, mask = probs.max(0)
        return mask, conf
    C = logits.shape[1]
    H, W = image_hw
    if C * H * W <= max_elements:
        probs = resize_logits(logits, image_hw).softmax(1)[0]
        conf, mask = probs.max(0)
        return mask, conf
    rows_per_strip = max(1, max_elements // (C * W))
    masks, confs = [], []
    for r0 in range(0, H, rows_per_strip):
        rows = range(r0, min(H, r0 + rows_per_strip))
        grid = _strip_grid((H, W), tuple(logits.shape[-2:]), rows, logits.device)
        strip = F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)
        conf, mask = strip.softmax(1)[0].max(0)
        masks.append(mask)
        confs.append(conf)
    return torch.cat(masks), torch.cat(confs)


def stage3_grid(input_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in tokens of stage 3 (stride 16) for a network input of ``input_size`` (w, h):
    the kernel=stride patch embeddings floor at each stage (docs/official.md §3.5)."""
    return tuple((s // 4) // 2 // 2 for s in input_size)


def stage3_window_boxes(input_size: tuple[int, int], image_size: tuple[int, int] | None = None,
                        window_size: int = 14) -> list[tuple[float, float, float, float]]:
    """Where the stage-3 attention windows lie: one (x0, y0, x1, y1) box per window, in pixels of
    the original image of ``image_size`` (w, h) (default: of the network input), for a network
    input of ``input_size`` (w, h).

    The stage-3 token grid (stride 16) is zero-padded right/bottom to multiples of ``window_size``
    (§4.3, docs/official.md §3.4); boxes are clipped to the real tokens, so the last row / column of
    windows is narrower when padding was needed. Raises ValueError for a non-positive window.
    """
    if window_size <= 0:
        raise ValueError(f"window_size must be positive, got {window_size}")
    image_size = image_size or input_size
    gw, gh = stage3_grid(input_size)
    sx, sy = 16 * image_size[0] / input_size[0], 16 * image_size[1] / input_size[1]
    boxes = []
    for r in range(0, gh, window_size):
        for c in range(0, gw, window_size):
            boxes.append((c * sx, r * sy, min(c + window_size, gw) * sx, min(r + window_size, gh) * sy))
    return boxes


@dataclass(frozen=True)
class ClassArea:
    """One class present in a segmentation: index (output channel), name, pixel count, fraction of the image."""

    index: int
    name: str
    pixels: int
    fraction: float


@dataclass
class SegmentationResult:
    """The segmentation of one image and what produced it.

    mask: (H, W) class indices (uint8 for <= 256 classes) at the original image size; confidence:
    (H, W) float32 max softmax probability; labels / palette: class names and RGB colours (0-255);
    image_size / input_size: (w, h) of the original and of the network input; stage3_attention /
    window_size: the stage-3 setting used; times in milliseconds.
    """

    mask: np.ndarray
    confidence: np.ndarray
    labels: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    stage3_attention: str
    window_size: int
    model_name: str
    weights: WeightsInfo
    device: str
    precision: str
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    global_blocks: tuple[int, ...] = ()  # stage-3 blocks (0-based) that ran global attention, from model.cfg
    extra: dict = field(default_factory=dict)

    @property
    def run_info(self) -> RunInfo:
        """What produced this result (:func:`uniformer.inference.describe_run` shows it)."""
        return RunInfo(self.model_name, self.weights, self.device, self.precision, self.inference_ms,
                       (("preprocessing", self.preprocess_ms), ("resizing", self.postprocess_ms)))

    def class_areas(self) -> list[ClassArea]:
        """Classes present, largest area first."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.labels))
        total = int(self.mask.size)
        order = np.argsort(-counts, kind="stable")
        return [ClassArea(int(i), self.labels[i], int(counts[i]), counts[i] / total) for i in order if counts[i]]

    def window_boxes(self) -> list[tuple[float, float, float, float]]:
        """The stage-3 windows used, in original-image pixels (empty for global attention)."""
        if self.stage3_attention == "global":
            return []
        return stage3_window_boxes(self.input_size, self.image_size, self.window_size)

    def agreement(self, other_mask: np.ndarray) -> float:
        """Fraction of pixels (0-1) whose class equals ``other_mask``'s (H, W), e.g. a window run
        against the global one on the same image."""
        return float((self.mask == other_mask).mean())

    def draw(self, image: Image.Image, opacity: float = 0.6, visible: Sequence[int] | None = None,
             show_windows: bool = False) -> Image.Image:
        """``image`` (the photo it was segmented from) under the class colours at ``opacity`` (0-1),
        only the ``visible`` classes (default: all), with the stage-3 windows outlined in white when
        ``show_windows`` and the run used windows (:mod:`uniformer.tasks.visualize`)."""
        from .visualize import draw_boxes, overlay_segmentation

        visible = None if visible is None else [int(v) for v in visible]
        out = overlay_segmentation(image, self.mask, self.palette, float(opacity), visible)
        if show_windows and self.stage3_attention != "global":
            out = draw_boxes(out, self.window_boxes(), color=(255, 255, 255), width=max(2, round(max(out.size) / 300)))
        return out

    def save(self, folder: str | Path, drawing: Image.Image, full_paths: bool = True) -> tuple[Path, Path, Path]:
        """Write ``drawing`` (e.g. :meth:`draw`) as ``overlay.png``, the class-index mask as
        ``mask.png`` (palette PNG, pixel value = class index) and :meth:`to_dict` as
        ``classes.json`` into ``folder`` (created if needed) -> their paths. ``full_paths``: as
        :meth:`to_dict`."""
        from .visualize import mask_to_png_image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "overlay.png", folder / "mask.png", folder / "classes.json"
        drawing.save(paths[0])
        mask_to_png_image(self.mask, self.palette).save(paths[1])
        paths[2].write_text(json.dumps(self.to_dict(full_paths), indent=2))
        return paths

    def to_dict(self, full_paths: bool = True) -> dict:
        """JSON-ready summary (no pixel arrays): settings, timings, weights and class areas.
        ``full_paths=False`` names a local checkpoint by file name only (``WeightsInfo.describe``)."""
        return {
            "model_name": self.model_name, "weights": self.weights.describe(full_paths), "device": self.device,
            "precision": self.precision, "image_size": list(self.image_size), "input_size": list(self.input_size),
            "stage3_attention": self.stage3_attention, "window_size": self.window_size,
            "global_blocks": list(self.global_blocks), "preprocess_ms": self.preprocess_ms,
            "inference_ms": self.inference_ms, "postprocess_ms": self.postprocess_ms,
            "classes": [{"index": a.index, "name": a.name, "pixels": a.pixels, "fraction": a.fraction}
                        for a in self.class_areas()],
        }


def _pretrained_cfg(model: torch.nn.Module):
    """The model's ``pretrained_cfg`` (set by ``create_model``), else ADE20K-150 with ImageNet statistics."""
    from ..registry import PretrainedCfg

    return getattr(model, "pretrained_cfg", None) or PretrainedCfg(label_set="ade20k-150", num_classes=150)


@torch.inference_mode()
def segment_image(model: torch.nn.Module, image, stage3_attention: str | None = None, window_size: int | None = None,
                  scale: Sequence[int] | None = None, device: str | torch.device | None = None,
                  precision: str = "fp32") -> SegmentationResult:
    """Segment one image with a segmentor from ``create_model`` (e.g. 'upernet_global_small').

    image: path, bytes, PIL image or array (decoded by ``load_image``). stage3_attention /
    window_size: run stage 3 'global', 'window' or 'hybrid' (default: the model's own setting),
    on a twin sharing the weights (``with_stage3_attention``). scale: (long, short) bound of the
    keep-ratio resize (default: the model's official (2048, 512)); a smaller one runs faster,
    off the official protocol. The model is moved to ``device`` (default: where it is).

    Raises ImageDecodeError (bad image), ValueError (bad mode, window, scale, precision, device).
    """
    from ..models.dense import UniFormerSegmentor

    require_model(model, UniFormerSegmentor, "segment_image", "upernet_global_small")
    cfg = model.cfg
    scale = test_scale(scale, cfg.test_scale)
    pcfg = _pretrained_cfg(model)
    run, dev = stage3_run(model, stage3_attention, window_size, device)
    t0 = time.perf_counter()
    img = load_image(image)
    inp = preprocess_segmentation(img, pcfg, scale, cfg.test_size_divisor)
    x = inp.tensor.to(dev)
    t1 = time.perf_counter()
    with autocast(dev, precision):
        logits = run(x)
    synchronize(dev)
    t2 = time.perf_counter()
    mask, conf = logits_to_mask(logits, x.shape[-2:], (inp.image_size[1], inp.image_size[0]),
                                content_hw=(inp.input_size[1], inp.input_size[0]))
    t3 = time.perf_counter()
    labels = get_labels(pcfg.label_set)
    dtype = np.uint8 if len(labels) <= 256 else np.int32
    bcfg = run.cfg.backbone
    return SegmentationResult(
        mask=mask.cpu().numpy().astype(dtype), confidence=conf.float().cpu().numpy(), labels=labels,
        palette=get_palette(pcfg.label_set), image_size=inp.image_size, input_size=inp.input_size,
        stage3_attention=bcfg.stage3_attention, window_size=bcfg.window_size,
        model_name=getattr(model, "model_name", type(model).__name__),
        weights=getattr(model, "weights_info", WeightsInfo("untrained")), device=str(dev), precision=precision,
        preprocess_ms=(t1 - t0) * 1000, inference_ms=(t2 - t1) * 1000, postprocess_ms=(t3 - t2) * 1000,
        global_blocks=tuple(i for i, w in enumerate(stage3_window_sizes(bcfg)) if w is None))


#: The stage-3 attention modes (paper §4.3), in the order they are compared.
STAGE3_MODES = ("global", "window", "hybrid")


@dataclass
class ModeComparison:
    """The inference time of each stage-3 mode on one input, and how often its class map agrees with
    the global mode's (§4.3: windows trade accuracy for speed on large inputs).

    timings: (mode, window size; None for global) -> (inference ms, fraction 0-1 of pixels with
    the same class as the global run, or None before a global run); global_mask: the (H, W) class
    map of the last global run.
    """

    timings: dict = field(default_factory=dict)
    global_mask: np.ndarray | None = None

    def record(self, result: "SegmentationResult") -> None:
        """Add ``result``'s inference time (and agreement with the global class map) to the table."""
        global_run = result.stage3_attention == "global"
        if global_run:
            self.global_mask = result.mask
        agree = None if self.global_mask is None else result.agreement(self.global_mask)
        self.timings[(result.stage3_attention, None if global_run else result.window_size)] = (result.inference_ms,
                                                                                                agree)

    def rows(self) -> list[dict]:
        """One dict per timed run, global first, then window and hybrid by window size: ``mode``,
        ``window`` (None for global), ``ms``, ``vs_global`` (time ratio to the global run, None
        without one) and ``agreement`` (0-1, None before a global run)."""
        base = self.timings.get(("global", None), (None, None))[0]
        order = {m: i for i, m in enumerate(STAGE3_MODES)}
        return [{"mode": mode, "window": ws, "ms": ms, "vs_global": ms / base if base else None, "agreement": agree}
                for (mode, ws), (ms, agree) in sorted(self.timings.items(),
                                                      key=lambda kv: (order[kv[0][0]], kv[0][1] or 0))]


def compare_stage3_modes(run: Callable[[str], "SegmentationResult"], shown: str,
                         comparison: ModeComparison | None = None,
                         progress: Callable[[float, str], None] | None = None,
                         ) -> tuple["SegmentationResult", ModeComparison]:
    """Time every stage-3 mode on one input: ``run(mode)`` segments it with stage 3 in ``mode``
    (e.g. ``lambda m: segment_image(twins[m], image)``). One untimed warm-up run (global) comes
    first, so that the first mode timed does not pay one-time costs (kernel set-up for this input
    size). Returns (the result of mode ``shown``, ``comparison`` with the three runs recorded).
    ``progress(fraction, text)`` is told before each run. Raises what ``run`` raises."""
    comparison = comparison if comparison is not None else ModeComparison()
    tell = progress or (lambda fraction, text: None)
    tell(0, "warm-up run")
    run("global")
    result = None
    for i, mode in enumerate(STAGE3_MODES):
        tell((i + 1) / (len(STAGE3_MODES) + 1), f"timing {mode} ({i + 1}/{len(STAGE3_MODES)})")
        out = run(mode)
        comparison.record(out)
        result = out if mode == shown else result
    return result, comparison
