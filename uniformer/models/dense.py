"""Dense-prediction UniFormers (paper §4.3): backbones with heads for semantic segmentation (UperNet,
Semantic FPN on ADE20K) and top-down human pose estimation (COCO keypoints).

A full model holds ``backbone`` (our :class:`~uniformer.models.uniformer.UniFormer` /
:class:`~uniformer.models.light.UniFormerLight` in dense mode) and the heads under their official
OpenMMLab names (``neck``, ``decode_head``, ``auxiliary_head``, ``keypoint_head``), so an official
mmseg / mmpose checkpoint (``{'meta', 'state_dict'}``) loads strictly after
:func:`dense_checkpoint_filter_fn` renames only its ``backbone.*`` part (docs/dense.md §1-4).

Stage-3 attention (global / window / hybrid, §4.3) is a run-time choice of a loaded model:
:func:`with_stage3_attention` returns a twin sharing every weight. The official "w32" / "h32"
results are the global checkpoints run this way (docs/dense.md §1, docs/official.md §3.4).

File order follows timm: configs -> models -> checkpoint filter -> registered entries.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from ..heads import FCNHead, FPN, FPNHead, TopdownHeatmapSimpleHead, UPerHead
from ..registry import ModelEntry, PretrainedCfg, register_model
from .light import UniFormerLight, UniFormerLightConfig, light_config
from .uniformer import STAGE3_ATTENTION, UniFormer, UniFormerConfig, backbone_filter_fn, checkpoint_filter_fn
from .uniformer import with_stage3_attention as _backbone_with_stage3_attention

__all__ = ["SegmentorConfig", "PoseConfig", "SegmentorOutput", "UniFormerSegmentor", "UniFormerPose",
           "build_backbone", "with_stage3_attention", "dense_checkpoint_filter_fn", "DECODERS", "DenseModel",
           "replace_config"]

DECODERS = ("upernet", "fpn")
_BACKBONE_FIELDS = frozenset(f.name for f in fields(UniFormerLightConfig))


def replace_config(cfg, changes: dict):
    """``dataclasses.replace`` where fields of the backbone config (``stage3_attention``,
    ``window_size``, ``drop_path_rate``, ...) are forwarded to ``cfg.backbone``. Raises TypeError
    for a field neither config has."""
    own = {f.name for f in fields(cfg)}
    backbone_changes = {k: changes.pop(k) for k in list(changes) if k not in own and k in _BACKBONE_FIELDS}
    unknown = [k for k in changes if k not in own]
    if unknown:
        raise TypeError(f"{type(cfg).__name__} has no field(s) {unknown}")
    if backbone_changes:
        changes["backbone"] = changes.get("backbone", cfg.backbone).replace(**backbone_changes)
    return dataclasses.replace(cfg, **changes)


@dataclass(frozen=True)
class SegmentorConfig:
    """A semantic-segmentation model and its official test-time settings (docs/dense.md §2, §5).

    backbone: the dense backbone config (``out_indices=(0, 1, 2, 3)``); decoder: 'upernet'
    (UPerHead, channels 512, pool scales (1, 2, 3, 6), + FCN auxiliary head on stage 3 when
    ``aux_head``) or 'fpn' (Semantic FPN: FPN neck to 256 channels + FPNHead, channels 128);
    num_classes: 150 for ADE20K. test_scale: (long, short) bound of the keep-ratio test resize;
    test_size_divisor: None (UperNet: no alignment) or 32 (FPN's AlignResize: a second resize that
    stretches to multiples of 32). ``replace`` forwards backbone fields (``stage3_attention``,
    ``window_size``) to ``backbone``.
    """

    backbone: UniFormerConfig
    decoder: str = "upernet"
    num_classes: int = 150
    channels: int | None = None
    aux_head: bool = True
    aux_channels: int = 256
    neck_channels: int = 256
    dropout_ratio: float = 0.1
    test_scale: tuple[int, int] = (2048, 512)
    test_size_divisor: int | None = None

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.backbone.out_indices != (0, 1, 2, 3):
            raise ValueError(f"a segmentor needs all four stage maps (out_indices=(0, 1, 2, 3)), "
                             f"got {self.backbone.out_indices}")

    @property
    def decoder_channels(self) -> int:
        """Channels of the decode head: ``channels`` or the official default (UperNet 512, FPN 128)."""
        return self.channels or (512 if self.decoder == "upernet" else 128)

    def replace(self, **changes) -> "SegmentorConfig":
        """A copy with ``changes`` applied (backbone fields go to ``backbone``); TypeError for unknown fields."""
        return replace_config(self, changes)


@dataclass(frozen=True)
class PoseConfig:
    """A top-down pose model and its official test-time settings (docs/dense.md §2, §5).

    backbone: dense backbone config returning the last stage only (``out_indices=(3,)``);
    num_joints: 17 (COCO); num_deconv / deconv_channels: the SimpleBaseline head (3 x 256).
    image_size: network input (width, height) in pixels, e.g. (192, 256); the heatmaps are a
    quarter of it. bbox_padding: person boxes are enlarged by this factor (1.25); flip_test /
    shift_heatmap: average with the flipped image's heatmaps, shifted right by 1 px.
    ``num_classes`` is an alias of ``num_joints`` (so ``create_model(num_classes=...)`` works).
    """

    backbone: UniFormerConfig
    num_joints: int = 17
    num_deconv: int = 3
    deconv_channels: int = 256
    image_size: tuple[int, int] = (192, 256)
    bbox_padding: float = 1.25
    flip_test: bool = True
    shift_heatmap: bool = True

    def __post_init__(self):
        if self.backbone.out_indices is None:
            raise ValueError("the pose backbone must be a dense backbone (out_indices set)")

    @property
    def num_classes(self) -> int:
        return self.num_joints

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(width, height) of the heatmaps: ``image_size`` / 2**(5 - num_deconv)."""
        f = 2 ** (5 - self.num_deconv)
        return self.image_size[0] // f, self.image_size[1] // f

    def replace(self, **changes) -> "PoseConfig":
        """A copy with ``changes`` applied (``num_classes`` means ``num_joints``; backbone fields go
        to ``backbone``); TypeError for unknown fields."""
        if "num_classes" in changes:
            changes["num_joints"] = changes.pop("num_classes")
        return replace_config(self, changes)


def build_backbone(cfg: UniFormerConfig) -> UniFormer:
    """The backbone module of ``cfg``: UniFormerLight for a light config, else UniFormer."""
    return UniFormerLight(cfg) if isinstance(cfg, UniFormerLightConfig) else UniFormer(cfg)


class SegmentorOutput(NamedTuple):
    """Every intermediate of one segmentor forward (for parity tests and inspection).

    logits: decode-head logits (B, num_classes, H/4, W/4), before any resize; aux_logits: the
    auxiliary FCN head's (B, num_classes, H/16, W/16) or None; neck_outputs: the FPN neck's maps or
    None; backbone_outputs: the 4 normalized stage maps (strides 4, 8, 16, 32).
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor | None
    neck_outputs: list[torch.Tensor] | None
    backbone_outputs: list[torch.Tensor]


class DenseModel(nn.Module):
    """Shared by the dense models: the stage-3 twin and the backbone's config."""

    cfg: SegmentorConfig | PoseConfig

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of the backbone's blocks (timm's switch; the heads are not checkpointed)."""
        self.backbone.set_grad_checkpointing(enable)

    def _with_backbone(self, backbone: nn.Module, cfg) -> "DenseModel":
        """A model of the same class whose backbone is ``backbone`` and whose other modules are
        ``self``'s very modules (shared parameters)."""
        twin = type(self).__new__(type(self))
        nn.Module.__init__(twin)
        for name, value in vars(self).items():  # plain attributes: cfg, absent heads (None), pretrained_cfg, ...
            if not name.startswith("_"):
                object.__setattr__(twin, name, value)
        for name, module in self.named_children():
            setattr(twin, name, backbone if name == "backbone" else module)
        twin.cfg = cfg
        return twin


class UniFormerSegmentor(DenseModel):
    """Encoder-decoder semantic segmentation (mmseg ``EncoderDecoder``, test mode 'whole').

    ``forward``: normalized images (B, 3, H, W) -> decode-head logits (B, num_classes, H/4, W/4)
    (mmseg's ``encode_decode`` before its resize; :mod:`uniformer.tasks.segmentation` does the
    official resizes). ``forward_all`` also returns the auxiliary logits and intermediate maps.
    """

    def __init__(self, cfg: SegmentorConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        dims = cfg.backbone.dims
        if cfg.decoder == "upernet":
            self.neck = None
            self.decode_head = UPerHead(dims, cfg.decoder_channels, num_classes=cfg.num_classes,
                                        dropout_ratio=cfg.dropout_ratio)
            self.auxiliary_head = (FCNHead(dims[2], cfg.aux_channels, num_classes=cfg.num_classes,
                                           dropout_ratio=cfg.dropout_ratio) if cfg.aux_head else None)
        else:
            self.neck = FPN(dims, cfg.neck_channels, num_outs=4)
            self.decode_head = FPNHead((cfg.neck_channels,) * 4, (4, 8, 16, 32), cfg.decoder_channels,
                                       num_classes=cfg.num_classes, dropout_ratio=cfg.dropout_ratio)
            self.auxiliary_head = None

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def forward_all(self, x: torch.Tensor) -> SegmentorOutput:
        """(B, 3, H, W) -> :class:`SegmentorOutput` (logits, aux logits, neck and backbone maps)."""
        feats = self.backbone(x)
        neck = self.neck(feats) if self.neck is not None else None
        logits = self.decode_head(neck if neck is not None else feats)
        aux = self.auxiliary_head(feats) if self.auxiliary_head is not None else None
        return SegmentorOutput(logits, aux, neck, feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return self.decode_head(self.neck(feats) if self.neck is not None else feats)


class UniFormerPose(DenseModel):
    """Top-down heatmap pose estimator (mmpose ``TopDown``): backbone (last stage) + SimpleBaseline head.

    ``forward``: normalized person crops (B, 3, h, w) (h x w = ``cfg.image_size`` reversed) ->
    heatmaps (B, num_joints, h/4, w/4). Flip test and decoding: :mod:`uniformer.tasks.pose`.
    """

    def __init__(self, cfg: PoseConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.keypoint_head = TopdownHeatmapSimpleHead(cfg.backbone.dims[-1], cfg.num_joints, cfg.num_deconv,
                                                      cfg.deconv_channels)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


def with_stage3_attention(model: nn.Module, mode: str, window_size: int | None = None) -> nn.Module:
    """The same network with stage-3 attention ``mode`` ('global', 'window', 'hybrid') and
    ``window_size`` (default: the model's), sharing all of ``model``'s parameter tensors; ``model``
    is unchanged, so concurrent requests with different modes never interfere (§4.3).

    Accepts a dense model of this module or a dense backbone. Raises ValueError for an unknown
    mode, or a windowed mode on a light backbone (its stage 3 has hourglass blocks, no windows).
    """
    if mode not in STAGE3_ATTENTION:
        raise ValueError(f"stage-3 attention must be one of {STAGE3_ATTENTION}, got {mode!r}")
    backbone = model.backbone if isinstance(model, DenseModel) else model
    if isinstance(backbone, UniFormerLight) and mode != "global":
        raise ValueError("light-weight backbones (XXS/XS) have hourglass stage-3 blocks: no windowed attention")
    if window_size is not None and window_size <= 0:
        raise ValueError(f"window_size must be positive, got {window_size}")
    current = backbone.cfg
    if current.stage3_attention == mode and (mode == "global" or window_size in (None, current.window_size)):
        return model  # nothing changes (global attention ignores the window size)
    new_backbone = _backbone_with_stage3_attention(backbone, mode, window_size)
    if not isinstance(model, DenseModel):
        return new_backbone
    return model._with_backbone(new_backbone, model.cfg.replace(backbone=new_backbone.cfg))


# --- official checkpoint names -> ours ---------------------------------------------------------

def dense_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor],
                               model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Map a full official mmseg / mmpose state dict to our names: the ``backbone.*`` part through
    :func:`~uniformer.models.uniformer.checkpoint_filter_fn` (our backbone's module names), the
    heads unchanged (they keep the official names). mmpose 1.x's ``head.*`` prefix becomes
    ``keypoint_head.*`` (docs/dense.md §4). A state dict already in our names passes unchanged."""
    backbone = {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    out = {f"backbone.{k}": v for k, v in checkpoint_filter_fn(backbone, model).items()}
    rename_head = not any(k.startswith("keypoint_head.") for k in state_dict)
    for k, v in state_dict.items():
        if k.startswith("backbone."):
            continue
        if rename_head and k.startswith("head."):
            k = "keypoint_head." + k[len("head."):]
        out[k] = v
    return out


# --- registered checkpoints ----------------------------------------------------------------------

_SEG_DRIVE = "The official file is on Google Drive / Baidu Cloud (Sense-X/UniFormer, semantic_segmentation/README.md)."
_SEG_UNRELEASED = ("No checkpoint of this experiment was released (the official semantic_segmentation/README.md "
                   "lists its log only); train one or use the global model run with hybrid windows.")
_POSE_DRIVE = "The official file is on Google Drive / Baidu Cloud (Sense-X/UniFormer, pose_estimation/README.md)."
#: (height, width) of the official top-down pose models' inputs.
_POSE_SIZES = ((256, 192), (384, 288), (448, 320))
_BACKBONE_HINT = ("Backbone weights come inside the official dense checkpoints ({}; Google Drive, Sense-X/UniFormer "
                  "semantic_segmentation / object_detection / pose_estimation READMEs); their 'backbone.' entries "
                  "are used.")


def _backbones() -> dict[str, tuple[UniFormerConfig, tuple[str, ...], str, tuple[str, ...], str]]:
    """name -> (backbone config, reference variants, where its weights are (words), the registered
    checkpoints holding it, description)."""
    sizes = {"small": ("s", (3, 4, 8, 3), "S"), "base": ("b", (5, 8, 20, 7), "B")}
    modes = {"": ("global", 14, "", "global stage 3"),
             "_hybrid14": ("hybrid", 14, "_h14", "hybrid stage 3 (14x14 windows, every 4th block global)"),
             "_hybrid32": ("hybrid", 32, "_h32", "hybrid stage 3 (32x32 windows, every 4th block global)"),
             "_window32": ("window", 32, "_w32", "windowed stage 3 (32x32 windows)")}
    out = {}
    for size, (s, depths, letter) in sizes.items():
        for suffix, (mode, ws, tag, text) in modes.items():
            cfg = UniFormerConfig(depths=depths, out_indices=(0, 1, 2, 3), stage3_attention=mode, window_size=ws)
            if mode == "global" or ws == 32:
                holders = (f"upernet_global_{size}", f"fpn_global_{size}")
                where = ", ".join(holders) + (", run with 32x32 windows" if ws == 32 else "")
            else:
                holders = (f"mask_rcnn_1x_hybrid_{size}", f"mask_rcnn_3x_ms_hybrid_{size}",
                           f"cascade_mask_rcnn_3x_ms_hybrid_{size}") + (("fpn_hybrid_base",) if size == "base" else ())
                where = f"mask_rcnn_*_hybrid_{size}, cascade_mask_rcnn_3x_ms_hybrid_{size}" + (
                    ", fpn_hybrid_base" if size == "base" else "")
            out[f"uniformer_{size}{suffix}_backbone"] = (
                cfg, (f"seg_{s}{tag}", f"det_{s}{tag}"), where, holders,
                f"UniFormer-{letter} dense backbone, {text} (4 normalized stage maps, strides 4-32)")
        out[f"uniformer_{size}_pose_backbone"] = (
            UniFormerConfig(depths=depths, out_indices=(3,)), (f"pose_{s}",), f"top_down_*_global_{size}",
            tuple(f"top_down_{h}x{w}_global_{size}" for h, w in _POSE_SIZES),
            f"UniFormer-{letter} pose backbone (last normalized stage map, stride 32)")
    return out


def _segmentors() -> dict[str, tuple[SegmentorConfig, str | None, str, str]]:
    """name -> (config, download hint (None: on the Hub), description); the name is the reference variant."""
    small = UniFormerConfig(out_indices=(0, 1, 2, 3))
    base = UniFormerConfig(depths=(5, 8, 20, 7), out_indices=(0, 1, 2, 3))
    hybrid = dict(stage3_attention="hybrid", window_size=14)
    out = {}
    for decoder, extra in (("upernet", {}), ("fpn", {"test_size_divisor": 32, "aux_head": False})):
        title = "UperNet" if decoder == "upernet" else "Semantic FPN"
        for size, bb, letter in (("small", small, "S"), ("base", base, "B")):
            out[f"{decoder}_global_{size}"] = (
                SegmentorConfig(bb, decoder, **extra), None if (decoder, size) == ("upernet", "small") else _SEG_DRIVE,
                f"{title} + UniFormer-{letter} (global), ADE20K 150 classes")
            released = decoder == "fpn" and size == "base"
            out[f"{decoder}_hybrid_{size}"] = (
                SegmentorConfig(bb.replace(**hybrid), decoder, **extra), _SEG_DRIVE if released else _SEG_UNRELEASED,
                f"{title} + UniFormer-{letter} (hybrid stage 3, 14x14 windows), ADE20K 150 classes")
    for size in ("xxs", "xs"):
        out[f"fpn_{size}"] = (
            SegmentorConfig(light_config(size).replace(out_indices=(0, 1, 2, 3)), "fpn", test_size_divisor=32,
                            aux_head=False), _SEG_DRIVE,
            f"Semantic FPN + UniFormer-{size.upper()} (light-weight), ADE20K 150 classes")
    return out


def _poses() -> dict[str, tuple[PoseConfig, str]]:
    """name -> (config, description): S and B at the three input sizes (pose keys do not depend on it)."""
    out = {}
    for h, w in _POSE_SIZES:
        for size, depths, letter in (("small", (3, 4, 8, 3), "S"), ("base", (5, 8, 20, 7), "B")):
            out[f"top_down_{h}x{w}_global_{size}"] = (
                PoseConfig(UniFormerConfig(depths=depths, out_indices=(3,)), image_size=(w, h)),
                f"Top-down pose: UniFormer-{letter} + SimpleBaseline head, COCO 17 keypoints, {h}x{w}")
    return out


#: Google Drive file id of each official checkpoint: the links of the official model-zoo READMEs
#: (Sense-X/UniFormer), downloaded by :mod:`uniformer.downloads`.
_DRIVE_IDS = {
    "fpn_global_base": "14dLoIcAUWjyo1d5XXuo1yb2jcslt_t4P",
    "fpn_global_small": "14bEsZqMw35tmDgrvYA_dRMsSC0Z4TX2Y",
    "fpn_hybrid_base": "14XokJDp1oYDV9jZnniMXyk3AnVfk1S1-",
    "fpn_xs": "1Dj3GiQLK7YZPKSgz_Uk8JL1J66XEvw0Y",
    "fpn_xxs": "1DPakdzr6G7n8t3_ZAFCx8wFX1r5h_V7-",
    "top_down_256x192_global_base": "15tzJaRyEzyWp2mQhpjDbBzuGoyCaJJ-2",
    "top_down_256x192_global_small": "162R0JuTpf3gpLe1IK6oxRoQK7JSj4ylx",
    "top_down_384x288_global_base": "15qtUaOR_C7-vooheJE75mhA9oJQt3gSx",
    "top_down_384x288_global_small": "163vuFkpcgVOthC05jCwjGzo78Nr0eikW",
    "top_down_448x320_global_base": "156iNxetiCk8JJz41aFDmFh9cQbCaMk3D",
    "top_down_448x320_global_small": "165nQRsT58SXJegcttksHwDn46Fme5dGX",
    "upernet_global_base": "14bEgmFbTijBoTKTwny_aCJlARs6z31mP",
    "upernet_global_small": "13hOneJiFqwEneUz1Zpqo1W2uv7BsoXGF",
}

def _register() -> None:
    """Register every segmentation / pose model and dense backbone (called once, on import)."""
    for name, (cfg, variants, where, holders, desc) in _backbones().items():
        register_model(ModelEntry(
            name=name, build=UniFormer, config=cfg,
            pretrained=PretrainedCfg(download_hint=_BACKBONE_HINT.format(where), holders=holders,
                                     input_size=(3, 256, 192) if "pose" in name else (3, 512, 512),
                                     interpolation="bilinear", label_set="none", num_classes=0,
                                     reference_variant=variants),
            filter_fn=backbone_filter_fn,
            task="backbone", head_prefixes=(), description=desc))

    hub = "Andy1621/uniformer:upernet_global_small.pth"
    mirrors = ("lllyasviel/ControlNet:annotator/ckpts/upernet_global_small.pth",
               "lllyasviel/Annotators:upernet_global_small.pth")
    for name, (cfg, hint, desc) in _segmentors().items():
        on_hub = hint is None
        register_model(ModelEntry(
            name=name, build=UniFormerSegmentor, config=cfg,
            pretrained=PretrainedCfg(hub=hub if on_hub else None, mirrors=mirrors if on_hub else (), download_hint=hint,
                                     drive_id=_DRIVE_IDS.get(name),
                                     input_size=(3, 512, 512), crop_pct=1.0, interpolation="bilinear",
                                     label_set="ade20k-150", num_classes=150, reference_variant=name),
            filter_fn=dense_checkpoint_filter_fn, task="semantic-segmentation",
            head_prefixes=("decode_head.conv_seg.", "auxiliary_head.conv_seg."), description=desc))

    for name, (cfg, desc) in _poses().items():
        w, h = cfg.image_size
        register_model(ModelEntry(
            name=name, build=UniFormerPose, config=cfg,
            pretrained=PretrainedCfg(drive_id=_DRIVE_IDS[name], download_hint=_POSE_DRIVE, input_size=(3, h, w),
                                     crop_pct=1.0,
                                     interpolation="bilinear", label_set="coco-keypoints-17", num_classes=17,
                                     reference_variant=name),
            filter_fn=dense_checkpoint_filter_fn, task="pose-estimation", head_prefixes=("keypoint_head.final_layer.",),
            description=desc))


_register()
