"""Object detection and instance segmentation with UniFormer backbones (paper §4.3, §6.3; Tables 5,
7, 13, 20): Mask R-CNN and Cascade Mask R-CNN with the official mmdet 2.x module names, so the
official checkpoints (``{'meta', 'state_dict'}``, Google Drive only) load strictly after
:func:`~uniformer.models.dense.dense_checkpoint_filter_fn` renames their ``backbone.*`` part.

A detector holds ``backbone`` (dense UniFormer, hybrid stage 3 with 14x14 windows for S/B, or a
light XXS/XS), ``neck`` (FPN, 256 channels, 5 levels, P6 = stride-2 subsample of P5), ``rpn_head``
and ``roi_head`` (one stage or a 3-stage cascade). :meth:`UniFormerDetector.predict` is mmdet's
``simple_test`` on normalized, padded images; :mod:`uniformer.tasks.detection` adds the official
resize/pad pipeline, drawing and COCO-style export.

File order follows timm: config -> model -> registered entries.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch

from ..heads import FPN
from ..heads.roi import CASCADE_STDS, MASK_RCNN_STDS, RCNNTestConfig, RoIHead, paste_masks
from ..heads.rpn import RPNHead, RPNTestConfig
from ..inference import synchronize
from ..registry import ModelEntry, PretrainedCfg, register_model
from .dense import DenseModel, build_backbone, dense_checkpoint_filter_fn, replace_config
from .light import light_config
from .uniformer import UniFormerConfig

__all__ = ["DetectorConfig", "Detections", "DetectorOutput", "UniFormerDetector"]


@dataclass(frozen=True)
class DetectorConfig:
    """A two-stage detector and its official test-time settings (docs/dense.md §2, §5).

    backbone: dense backbone config with ``out_indices=(0, 1, 2, 3)``; cascade: Cascade Mask R-CNN
    (3 stages, 4-conv box heads) instead of Mask R-CNN; num_classes: 80 (COCO); neck_channels: FPN
    width; test_scale: (long, short) bound of the keep-ratio resize (1333, 800); size_divisor: pad
    the resized image bottom/right to multiples of it (32); rpn / rcnn: test-time thresholds.
    ``replace`` forwards backbone fields (``stage3_attention``, ``window_size``) to ``backbone``.
    """

    backbone: UniFormerConfig
    cascade: bool = False
    num_classes: int = 80
    neck_channels: int = 256
    test_scale: tuple[int, int] = (1333, 800)
    size_divisor: int = 32
    rpn: RPNTestConfig = field(default_factory=RPNTestConfig)
    rcnn: RCNNTestConfig = field(default_factory=RCNNTestConfig)

    def __post_init__(self):
        if self.backbone.out_indices != (0, 1, 2, 3):
            raise ValueError(f"a detector needs all four stage maps (out_indices=(0, 1, 2, 3)), "
                             f"got {self.backbone.out_indices}")

    @property
    def stage_stds(self) -> tuple[tuple[float, ...], ...]:
        """Box-regression stds per RoI stage (one stage, or the cascade's three)."""
        return CASCADE_STDS if self.cascade else MASK_RCNN_STDS

    def replace(self, **changes) -> "DetectorConfig":
        """A copy with ``changes`` applied (backbone fields go to ``backbone``); TypeError for unknown fields."""
        return replace_config(self, changes)


class Detections(NamedTuple):
    """Detections of one image, in original-image pixels.

    boxes: (K, 4) float32 ``(x1, y1, x2, y2)``; scores: (K,) class probabilities; labels: (K,) int64
    class indices (0..num_classes-1), by decreasing score; masks: (K, H, W) bool (prob >= 0.5) or
    None; mask_probs: (K, 28, 28) probabilities of each box's class, or None.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    mask_probs: torch.Tensor | None


class DetectorOutput(NamedTuple):
    """Every intermediate of :meth:`UniFormerDetector.predict` (for parity tests and teaching).

    backbone_outputs: 4 stage maps; neck_outputs: 5 FPN maps (strides 4-64); rpn_scores /
    rpn_deltas: per level (B, 3, H_l, W_l) objectness logits and (B, 12, H_l, W_l) deltas;
    proposals: per image (N, 5) ``(x1, y1, x2, y2, score)`` in network-input pixels; detections:
    per image :class:`Detections`; times: milliseconds per step ('backbone', 'neck', 'rpn',
    'roi_heads' (boxes and masks), 'paste').
    """

    backbone_outputs: list[torch.Tensor]
    neck_outputs: list[torch.Tensor]
    rpn_scores: list[torch.Tensor]
    rpn_deltas: list[torch.Tensor]
    proposals: list[torch.Tensor]
    detections: list[Detections]
    times: dict[str, float]


class UniFormerDetector(DenseModel):
    """Mask R-CNN / Cascade Mask R-CNN with a UniFormer backbone (mmdet ``MaskRCNN`` / ``CascadeRCNN``).

    ``forward``: normalized, padded images (B, 3, H, W) -> FPN maps [(B, 256, H/s, W/s)] for
    s = 4, 8, 16, 32, 64. :meth:`predict` runs the whole test procedure.
    """

    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.neck = FPN(cfg.backbone.dims, cfg.neck_channels, num_outs=5)
        self.rpn_head = RPNHead(cfg.neck_channels, cfg.neck_channels)
        self.roi_head = RoIHead(cfg.num_classes, cfg.neck_channels, cfg.stage_stds)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.backbone(x))

    def predict(self, x: torch.Tensor, img_shapes: Sequence[tuple[int, int]] | None = None,
                scale_factors: Sequence[Sequence[float]] | None = None,
                ori_shapes: Sequence[tuple[int, int]] | None = None, rcnn: RCNNTestConfig | None = None,
                paste: bool = True) -> DetectorOutput:
        """mmdet's ``simple_test`` (``rescale=True``) on a batch.

        x: normalized images (B, 3, H, W), padded bottom/right; img_shapes: (h, w) of each resized
        image before padding (default: (H, W)); scale_factors: (w_scale, h_scale, w_scale, h_scale)
        of the resize (default 1); ori_shapes: (H0, W0) of the original images, where masks are
        pasted (default: img_shapes). rcnn: second-stage thresholds (default: ``cfg.rcnn``);
        paste: paste the masks at full size (else ``masks`` is None).
        """
        B = x.shape[0]
        img_shapes = list(img_shapes or [tuple(x.shape[-2:])] * B)
        scale_factors = list(scale_factors or [(1.0, 1.0, 1.0, 1.0)] * B)
        ori_shapes = list(ori_shapes or img_shapes)
        rcnn = rcnn or self.cfg.rcnn
        times: dict[str, float] = {}
        t = time.perf_counter()

        def tick(name: str, ref: torch.Tensor) -> None:
            nonlocal t
            synchronize(ref.device)
            now = time.perf_counter()
            times[name] = (now - t) * 1000
            t = now

        feats = self.backbone(x)
        tick("backbone", feats[-1])
        neck = self.neck(feats)
        tick("neck", neck[-1])
        scores, deltas = self.rpn_head(neck)
        proposals = self.rpn_head.get_proposals([s.float() for s in scores], [d.float() for d in deltas],
                                                img_shapes, self.cfg.rpn)
        tick("rpn", proposals[0])
        outs = self.roi_head.predict(neck, proposals, img_shapes, scale_factors, rcnn)
        tick("roi_heads", outs[0].boxes)
        detections = []
        for o, shape in zip(outs, ori_shapes):
            masks = None
            if paste and o.mask_probs is not None:
                masks = paste_masks(o.mask_probs.float(), o.boxes.float(), shape, rcnn.mask_threshold)
            detections.append(Detections(o.boxes.float(), o.scores.float(), o.labels, masks,
                                         None if o.mask_probs is None else o.mask_probs.float()))
        tick("paste", x)
        return DetectorOutput(feats, neck, scores, deltas, proposals, detections, times)


# --- registered checkpoints ----------------------------------------------------------------------

_DET_DRIVE = "The official file is on Google Drive / Baidu Cloud only (Sense-X/UniFormer, object_detection/README.md)."


def _detectors() -> dict[str, tuple[DetectorConfig, str]]:
    """name (= official experiment) -> (config, description with the paper's COCO val2017 box / mask AP)."""
    small = UniFormerConfig(out_indices=(0, 1, 2, 3), stage3_attention="hybrid", window_size=14)
    base = small.replace(depths=(5, 8, 20, 7))
    ap = {("mask_rcnn_1x", "small"): (45.6, 41.6, "Table 5"), ("mask_rcnn_3x_ms", "small"): (48.2, 43.4, "Table 5"),
          ("mask_rcnn_1x", "base"): (47.4, 43.1, "Table 5"), ("mask_rcnn_3x_ms", "base"): (50.3, 44.8, "Table 5"),
          ("cascade_mask_rcnn_3x_ms", "small"): (52.1, 45.2, "Table 7"),
          ("cascade_mask_rcnn_3x_ms", "base"): (53.8, 46.4, "Table 7")}
    out = {}
    for (exp, size), (box, mask, table) in ap.items():
        letter = "S" if size == "small" else "B"
        cascade = exp.startswith("cascade")
        title = "Cascade Mask R-CNN" if cascade else "Mask R-CNN"
        schedule = "3x + multi-scale" if "3x" in exp else "1x"
        out[f"{exp}_hybrid_{size}"] = (
            DetectorConfig(small if size == "small" else base, cascade=cascade),
            f"{title} + UniFormer-{letter} (hybrid stage 3, 14x14 windows), {schedule}, COCO 80 classes; "
            f"paper {table}: {box} box AP / {mask} mask AP")
    for size, (box, mask) in {"xxs": (42.8, 39.2), "xs": (44.6, 40.9)}.items():
        out[f"mask_rcnn_1x_{size}"] = (
            DetectorConfig(light_config(size).replace(out_indices=(0, 1, 2, 3))),
            f"Mask R-CNN + UniFormer-{size.upper()} (light-weight), 1x + multi-scale, COCO 80 classes; "
            f"paper Table 13: {box} box AP / {mask} mask AP")
    return out


def _class_head_prefixes(cfg: DetectorConfig) -> tuple[str, ...]:
    """The class-dependent layers, dropped when ``num_classes`` differs from the checkpoint's 80."""
    stages = [f".{i}" for i in range(3)] if cfg.cascade else [""]
    return tuple(f"roi_head.{head}{s}.{layer}." for s in stages
                 for head, layer in (("bbox_head", "fc_cls"), ("bbox_head", "fc_reg"), ("mask_head", "conv_logits")))


#: Google Drive file id of each official checkpoint: the links of the official model-zoo READMEs
#: (Sense-X/UniFormer), downloaded by :mod:`uniformer.downloads`.
_DRIVE_IDS = {
    "cascade_mask_rcnn_3x_ms_hybrid_base": "13G9wc73CmS1Kb-kVelFSDlK-ezUBadzQ",
    "cascade_mask_rcnn_3x_ms_hybrid_small": "13IhpRkh2hE8WfDyw-5-NXSUVZjn9DX20",
    "mask_rcnn_1x_hybrid_base": "13YrVEiqFraSuX1NzdhPnhw7bFXTvEii1",
    "mask_rcnn_1x_hybrid_small": "13KhBYkHKQg-CyhAgn1LQM1K0R4bwSpWT",
    "mask_rcnn_1x_xs": "1CRHb-W5Csy_509J4Ux62TOT7dpixdsOi",
    "mask_rcnn_1x_xxs": "1CUyS-hWbpLvOXHZ35n4BZPmiCbMXt0mc",
    "mask_rcnn_3x_ms_hybrid_base": "12xyS2xqFSYMkHUiVYVGVW7gaLIxuK2q6",
    "mask_rcnn_3x_ms_hybrid_small": "13O6P-spXbWuXgUjLw8AyRITYTwhdOwuD",
}

def _register() -> None:
    """Register every detector (called once, on import)."""
    for name, (cfg, desc) in _detectors().items():
        register_model(ModelEntry(
            name=name, build=UniFormerDetector, config=cfg,
            pretrained=PretrainedCfg(drive_id=_DRIVE_IDS[name], download_hint=_DET_DRIVE, input_size=(3, 800, 1333),
                                     crop_pct=1.0, interpolation="bilinear", label_set="coco-80", num_classes=80,
                                     reference_variant=name),
            filter_fn=dense_checkpoint_filter_fn, task="object-detection",
            head_prefixes=_class_head_prefixes(cfg), description=desc))


_register()
