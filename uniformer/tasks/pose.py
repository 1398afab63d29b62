"""Top-down human pose estimation with the official mmpose 0.16 test-time pipeline, as pure functions.

Pipeline (docs/dense.md §5; paper §4.3, COCO keypoints):

1. person box (x, y, w, h) -> centre (x + w/2, y + h/2) and scale: the box is widened or heightened
   to the input aspect ratio (w/h = 192/256, ...), divided by 200 ("pixel std") and enlarged by
   the padding 1.25 (``_xywh2cs`` of ``TopDownCocoDataset``, test mode);
2. affine crop (``get_affine_transform``, no rotation) of the 8-bit RGB image to the input size,
   bilinear with zeros outside the image (cv2 ``warpAffine`` INTER_LINEAR), rounded to 8 bits;
   /255, ImageNet mean/std;
3. heatmaps H(x); flip test: 0.5 * (H(x) + shift(flip_back(H(flip_w(x))))) where flip_back swaps the
   left/right joints and mirrors the width, and shift moves the map right by 1 px (column 0 keeps
   its value);
4. 'default' decoding: argmax per joint (-1 where the maximum <= 0), +-0.25 px towards the higher
   neighbour when 1 < px < W-1 and 1 < py < H-1, then back to image pixels with
   coords * (scale * 200 / heatmap size) + centre - scale * 100. (``modulate_kernel`` is unused by
   'default'; unbiased decoding / UDP are off.)

``estimate_pose(model, image, boxes)`` runs it and returns a :class:`PoseResult`. Difference from
the official code: cv2's fixed-point warp (1/32-pixel quantization) is computed in float here.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data import load_image
from ..data.labels import KeypointInfo, get_keypoint_info
from ..hub import WeightsInfo
from ..inference import RunInfo, autocast, select_device, synchronize

__all__ = ["PIXEL_STD", "box_to_center_scale", "get_affine_transform", "warp_affine", "crop_person",
           "flip_back", "shift_heatmaps", "flip_test_heatmaps", "get_max_preds", "transform_preds",
           "keypoints_from_heatmaps", "PersonPose", "PoseResult", "estimate_pose", "validate_box", "corners_to_box",
           "format_box", "format_boxes", "parse_box", "parse_boxes"]

#: mmpose's box "pixel std": scales are box sizes in units of 200 pixels.
PIXEL_STD = 200.0


def box_to_center_scale(box: Sequence[float], image_size: tuple[int, int] = (192, 256),
                        padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """mmpose ``_xywh2cs`` (test mode): box (x, y, w, h) in pixels -> (centre (2,), scale (2,)).

    The box is enlarged to the aspect ratio of ``image_size`` (width, height) around its centre,
    then scale = (w, h) / 200 * ``padding``. float32 like mmpose.
    """
    x, y, w, h = (float(v) for v in box[:4])
    aspect = image_size[0] / image_size[1]
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect * h:
        h = w * 1.0 / aspect
    elif w < aspect * h:
        w = h * aspect
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * padding
    return center, scale


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(center: Sequence[float], scale: Sequence[float], output_size: tuple[int, int],
                         rot: float = 0.0, inv: bool = False) -> np.ndarray:
    """mmpose ``get_affine_transform`` (no shift): the 2x3 matrix mapping image pixels to the
    ``output_size`` (w, h) crop of the box (``center``, ``scale`` x 200 px), rotated by ``rot``
    degrees; ``inv=True`` gives the inverse. Solved from the same 3 point pairs as
    ``cv2.getAffineTransform``."""
    center = np.asarray(center, dtype=np.float32)
    src_w = float(scale[0]) * PIXEL_STD
    dst_w, dst_h = output_size
    rad = np.pi * rot / 180
    sn, cs = np.sin(rad), np.cos(rad)
    src_dir = np.array([-src_w * -0.5 * sn, src_w * -0.5 * cs], dtype=np.float32)  # rotate (0, -w/2)
    dst_dir = np.array([0.0, dst_w * -0.5], dtype=np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2], dst[2] = _third_point(src[0], src[1]), _third_point(dst[0], dst[1])
    a, b = (dst, src) if inv else (src, dst)
    # rows [x y 1] @ M^T = target: solve the 3x3 system for both output coordinates
    design = np.concatenate([a.astype(np.float64), np.ones((3, 1))], axis=1)
    return np.linalg.solve(design, b.astype(np.float64)).T  # (2, 3)


def warp_affine(image: torch.Tensor, matrix: np.ndarray, output_size: tuple[int, int]) -> torch.Tensor:
    """cv2 ``warpAffine(image, matrix, output_size, INTER_LINEAR, BORDER_CONSTANT 0)`` in torch:
    out(x, y) = bilinear sample of ``image`` at M^-1 (x, y), pixel centres at integer coordinates,
    zeros outside. (C, H, W) float -> (C, output_size[1], output_size[0]) float."""
    C, H, W = image.shape
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]  # output pixel -> source pixel
    ow, oh = output_size
    ys, xs = torch.meshgrid(torch.arange(oh, dtype=torch.float64), torch.arange(ow, dtype=torch.float64),
                            indexing="ij")
    inv_t = torch.from_numpy(inv)
    sx = inv_t[0, 0] * xs + inv_t[0, 1] * ys + inv_t[0, 2]
    sy = inv_t[1, 0] * xs + inv_t[1, 1] * ys + inv_t[1, 2]
    grid = torch.stack([(2 * sx + 1) / W - 1, (2 * sy + 1) / H - 1], dim=-1)[None].to(image.dtype)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def crop_person(image: Image.Image, center: np.ndarray, scale: np.ndarray, image_size: tuple[int, int],
                mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The normalized network input for one person: affine crop of the RGB ``image`` to
    ``image_size`` (w, h), rounded to 8 bits (cv2 warps the uint8 image), /255, (x - mean) / std.
    -> (3, h, w) float32."""
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)
    crop = warp_affine(rgb, get_affine_transform(center, scale, image_size), image_size).round().clamp(0, 255)
    return (crop / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
    """mmpose ``flip_back``: heatmaps (B, K, H, W) of a horizontally flipped image -> heatmaps of the
    original: the channels of each (left, right) pair swapped, then the width mirrored."""
    order = list(range(heatmaps.shape[1]))
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    return heatmaps[:, order].flip(3)


def shift_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """mmpose ``shift_heatmap``: move the maps right by 1 px (new[..., 1:] = old[..., :-1]; column 0
    keeps its value). (B, K, H, W) -> (B, K, H, W)."""
    out = heatmaps.clone()
    out[..., 1:] = heatmaps[..., :-1]
    return out


def flip_test_heatmaps(model: torch.nn.Module, x: torch.Tensor, flip_pairs: Sequence[Sequence[int]],
                       shift: bool = True) -> torch.Tensor:
    """The official flip test: 0.5 * (H(x) + shift(flip_back(H(x.flip(3))))). x (B, 3, h, w) ->
    heatmaps (B, K, h/4, w/4). The original and flipped crops run as one batch."""
    heat = model(torch.cat([x, x.flip(3)]))
    plain, flipped = heat[: x.shape[0]], flip_back(heat[x.shape[0]:], flip_pairs)
    if shift:
        flipped = shift_heatmaps(flipped)
    return (plain + flipped) * 0.5


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmpose ``_get_max_preds``: heatmaps (N, K, H, W) -> (coords (N, K, 2) as (x, y) heatmap
    pixels of the first maximum, maxvals (N, K, 1)); coords are -1 where the maximum is <= 0."""
    N, K, _, W = heatmaps.shape
    flat = heatmaps.reshape(N, K, -1)
    idx = np.argmax(flat, 2).reshape(N, K, 1)
    maxvals = np.amax(flat, 2).reshape(N, K, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % W
    preds[:, :, 1] = preds[:, :, 1] // W
    preds = np.where(np.tile(maxvals, (1, 1, 2)) > 0.0, preds, -1)
    return preds, maxvals


def transform_preds(coords: np.ndarray, center: np.ndarray, scale: np.ndarray,
                    output_size: tuple[int, int]) -> np.ndarray:
    """mmpose ``transform_preds`` (no UDP): heatmap coords (K, 2) -> image pixels:
    coords * (scale * 200 / output_size) + center - scale * 100. output_size = heatmap (w, h)."""
    scale = np.asarray(scale, dtype=np.float64) * PIXEL_STD
    out = np.empty_like(coords)
    out[:, 0] = coords[:, 0] * scale[0] / output_size[0] + center[0] - scale[0] * 0.5
    out[:, 1] = coords[:, 1] * scale[1] / output_size[1] + center[1] - scale[1] * 0.5
    return out


def keypoints_from_heatmaps(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray,
                            post_process: str | None = "default") -> tuple[np.ndarray, np.ndarray]:
    """mmpose 0.16 ``keypoints_from_heatmaps`` with ``post_process`` 'default' (or None: no
    quarter-pixel shift): heatmaps (N, K, H, W), centres (N, 2), scales (N, 2) ->
    (keypoints (N, K, 2) in image pixels, maxvals (N, K, 1)). Raises ValueError for other modes."""
    if post_process not in ("default", None):
        raise ValueError(f"only post_process='default' or None is implemented, got {post_process!r}")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    N, K, H, W = heatmaps.shape
    preds, maxvals = get_max_preds(heatmaps)
    if post_process == "default":
        for n in range(N):
            for k in range(K):
                hm = heatmaps[n, k]
                px, py = int(preds[n, k, 0]), int(preds[n, k, 1])
                if 1 < px < W - 1 and 1 < py < H - 1:
                    diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                    preds[n, k] += np.sign(diff) * 0.25
    center, scale = np.asarray(center), np.asarray(scale)
    for n in range(N):
        preds[n] = transform_preds(preds[n], center[n], scale[n], (W, H))
    return preds, maxvals


def validate_box(box: Sequence[float], image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A person box (x, y, w, h) as floats, checked: finite, w and h > 0, overlapping the image of
    ``image_size`` (w, h). Raises ValueError saying what is wrong."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"a person box is (x, y, width, height), got {box!r}") from None
    if not all(np.isfinite([x, y, w, h])):
        raise ValueError(f"the person box has non-finite values: {box!r}")
    if w <= 0 or h <= 0:
        raise ValueError(f"the person box needs a positive width and height, got {w:g} x {h:g}")
    W, H = image_size
    if x >= W or y >= H or x + w <= 0 or y + h <= 0:
        raise ValueError(f"the person box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {W}x{H} image")
    return x, y, w, h



def corners_to_box(first: Sequence[float], second: Sequence[float]) -> tuple[float, float, float, float]:
    """Two opposite corners (x, y) clicked on a photo (pixels, either order) -> the person box
    (x, y, w, h) that holds both corner pixels: w = |x1 - x0| + 1, h = |y1 - y0| + 1."""
    (x0, y0), (x1, y1) = (float(v) for v in first[:2]), (float(v) for v in second[:2])
    return min(x0, x1), min(y0, y1), abs(x1 - x0) + 1, abs(y1 - y0) + 1


def format_box(box: Sequence[float]) -> str:
    """A box (x, y, w, h) as the text :func:`parse_box` reads: 'x, y, w, h' in whole pixels."""
    return ", ".join(f"{v:.0f}" for v in box)


def format_boxes(boxes: Sequence[Sequence[float]]) -> str:
    """Several boxes as the text :func:`parse_boxes` reads: :func:`format_box` of each, joined by '; '."""
    return "; ".join(format_box(b) for b in boxes)


def parse_box(text: str | None, image_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """'x, y, w, h' (pixels; commas or spaces) -> the box checked by :func:`validate_box` against
    ``image_size`` (w, h), or None for an empty text (the whole image is the box). Raises
    ValueError saying what is wrong."""
    if text is None or not text.strip():
        return None
    try:
        values = [float(p) for p in re.split(r"[,\s;]+", text.strip()) if p]
    except ValueError:
        raise ValueError(f"a person box is four numbers 'x, y, width, height', got {text.strip()!r}") from None
    if len(values) != 4:
        raise ValueError(f"a person box is four numbers 'x, y, width, height', got {len(values)}")
    return validate_box(values, image_size)


def parse_boxes(text: str | None, image_size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """Person boxes separated by ';' or new lines, each read by :func:`parse_box` -> checked boxes
    (x, y, w, h); [] for an empty text (the whole image). Raises ValueError saying which box is
    wrong ('box 2 of 3: ...' when there are several)."""
    if text is None or not text.strip():
        return []
    parts = [p for p in re.split(r"[;\n]+", text) if p.strip()]
    boxes = []
    for n, part in enumerate(parts):
        try:
            boxes.append(parse_box(part, image_size))
        except ValueError as e:
            if len(parts) == 1:
                raise
            raise ValueError(f"box {n + 1} of {len(parts)}: {e}") from None
    return boxes


@dataclass
class PersonPose:
    """One person's keypoints. box: (x, y, w, h) given; center / scale: the crop (scale in units of
    200 px, padding included); keypoints: (K, 2) (x, y) image pixels; scores: (K,) heatmap maxima;
    score: their mean (mmpose's rescoring multiplies it with the detector's box score)."""

    box: tuple[float, float, float, float]
    center: np.ndarray
    scale: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    def to_dict(self, names: Sequence[str]) -> dict:
        """JSON-ready: box, COCO-style flat ``keypoints`` [x1, y1, s1, ...] and named joints."""
        return {
            "box_xywh": [float(v) for v in self.box],
            "center": [float(v) for v in self.center], "scale": [float(v) for v in self.scale],
            "score": self.score,
            "keypoints": [float(v) for kp, s in zip(self.keypoints, self.scores) for v in (*kp, s)],
            "joints": [{"name": n, "x": float(kp[0]), "y": float(kp[1]), "score": float(s)}
                       for n, kp, s in zip(names, self.keypoints, self.scores)],
        }


@dataclass
class PoseResult:
    """Keypoints of every given person box in one image and what produced them (times in ms).

    heatmaps: (P, K, h, w) float32 (after the flip test when ``flip_test``); image_size: (w, h);
    input_size: network input (w, h); keypoint_info: names, flip pairs, skeleton.
    """

    persons: list[PersonPose]
    heatmaps: np.ndarray
    keypoint_info: KeypointInfo
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    flip_test: bool
    model_name: str
    weights: WeightsInfo
    device: str
    precision: str
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    extra: dict = field(default_factory=dict)

    @property
    def run_info(self) -> RunInfo:
        """What produced this result (:func:`uniformer.inference.describe_run` shows it)."""
        return RunInfo(self.model_name, self.weights, self.device, self.precision, self.inference_ms,
                       (("preprocessing", self.preprocess_ms), ("decoding", self.postprocess_ms)))

    def to_dict(self, full_paths: bool = True) -> dict:
        """JSON-ready: settings, weights, timings and each person's keypoints. ``full_paths=False``
        names a local checkpoint by file name only (``WeightsInfo.describe``)."""
        return {
            "model_name": self.model_name, "weights": self.weights.describe(full_paths), "device": self.device,
            "precision": self.precision, "image_size": list(self.image_size), "input_size": list(self.input_size),
            "flip_test": self.flip_test, "keypoint_names": list(self.keypoint_info.names),
            "skeleton": [list(limb) for limb in self.keypoint_info.skeleton],
            "preprocess_ms": self.preprocess_ms, "inference_ms": self.inference_ms,
            "postprocess_ms": self.postprocess_ms,
            "persons": [p.to_dict(self.keypoint_info.names) for p in self.persons],
        }

    def to_json(self, indent: int | None = 2, full_paths: bool = True) -> str:
        return json.dumps(self.to_dict(full_paths), indent=indent)

    def keypoint_rows(self) -> list[tuple[int, str, float, float, float]]:
        """One row per person and joint: (person number from 1, joint name, x, y (image pixels,
        0.1 px), score (0.001)), persons in box order, joints in the label set's order."""
        return [(i + 1, name, round(float(x), 1), round(float(y), 1), round(float(s), 3))
                for i, person in enumerate(self.persons)
                for name, (x, y), s in zip(self.keypoint_info.names, person.keypoints, person.scores)]

    def draw(self, image: Image.Image, score_threshold: float = 0.0) -> Image.Image:
        """``image`` (the photo it was estimated on) with every person's skeleton, joints scoring
        below ``score_threshold`` hidden (:func:`uniformer.tasks.visualize.draw_pose`)."""
        from .visualize import draw_pose

        info = self.keypoint_info
        return draw_pose(image, self.persons, info.names, info.skeleton, score_threshold=float(score_threshold))

    def save(self, folder: str | Path, drawing: Image.Image, full_paths: bool = True) -> tuple[Path, Path]:
        """Write ``drawing`` (e.g. :meth:`draw`) as ``pose.png`` and :meth:`to_json` as
        ``keypoints.json`` into ``folder`` (created if needed) -> their paths. ``full_paths``: as
        :meth:`to_dict`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        png, keypoints = folder / "pose.png", folder / "keypoints.json"
        drawing.save(png)
        keypoints.write_text(self.to_json(full_paths=full_paths))
        return png, keypoints


@torch.inference_mode()
def estimate_pose(model: torch.nn.Module, image, boxes: Sequence[Sequence[float]] | None = None,
                  flip_test: bool | None = None, device: str | torch.device | None = None,
                  precision: str = "fp32") -> PoseResult:
    """Keypoints of the people in ``boxes`` (each (x, y, w, h) in image pixels; default: one box,
    the whole image) with a pose model from ``create_model`` (e.g. 'top_down_256x192_global_small').

    flip_test: default the model's (True, as the official test config). The model is moved to
    ``device`` (default: where it is). Raises ImageDecodeError (bad image), ValueError (bad box,
    precision or device; a model that is not a pose model).
    """
    from ..models.dense import UniFormerPose

    if not isinstance(model, UniFormerPose):
        raise ValueError(f"estimate_pose needs a pose model (e.g. 'top_down_256x192_global_small'), got "
                         f"{type(model).__name__}")
    cfg = model.cfg
    pcfg = getattr(model, "pretrained_cfg", None)
    mean = pcfg.mean if pcfg else (0.485, 0.456, 0.406)
    std = pcfg.std if pcfg else (0.229, 0.224, 0.225)
    info = get_keypoint_info(pcfg.label_set if pcfg else "coco-keypoints-17")
    flip = cfg.flip_test if flip_test is None else bool(flip_test)
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    t0 = time.perf_counter()
    img = load_image(image)
    W, H = img.size
    boxes = [validate_box(b, (W, H)) for b in boxes] if boxes else [(0.0, 0.0, float(W), float(H))]
    crops = [box_to_center_scale(b, cfg.image_size, cfg.bbox_padding) for b in boxes]
    x = torch.stack([crop_person(img, c, s, cfg.image_size, mean, std) for c, s in crops]).to(dev)
    t1 = time.perf_counter()
    with autocast(dev, precision):
        heat = flip_test_heatmaps(model, x, info.flip_pairs, cfg.shift_heatmap) if flip else model(x)
    heat = heat.float().cpu().numpy()
    synchronize(dev)
    t2 = time.perf_counter()
    centers = np.stack([c for c, _ in crops])
    scales = np.stack([s for _, s in crops])
    keypoints, maxvals = keypoints_from_heatmaps(heat, centers, scales)
    persons = [PersonPose(tuple(b), c, s, kp, mv[:, 0]) for b, c, s, kp, mv in zip(boxes, centers, scales, keypoints,
                                                                                    maxvals)]
    t3 = time.perf_counter()
    return PoseResult(
        persons=persons, heatmaps=heat, keypoint_info=info, image_size=(W, H), input_size=tuple(cfg.image_size),
        flip_test=flip, model_name=getattr(model, "model_name", type(model).__name__),
        weights=getattr(model, "weights_info", WeightsInfo("untrained")), device=str(dev), precision=precision,
        preprocess_ms=(t1 - t0) * 1000, inference_ms=(t2 - t1) * 1000, postprocess_ms=(t3 - t2) * 1000)
