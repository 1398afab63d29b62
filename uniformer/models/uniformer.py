"""UniFormer classifiers (paper §3-4, Table 1): four stages of UniFormer blocks, 2-D or 3-D.

File order follows timm: stages -> model -> ``checkpoint_filter_fn`` -> configs. Registered
names and their checkpoints live in :mod:`uniformer.models.image` (and later video/light files).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Sequence

import torch
from timm.layers import trunc_normal_
from torch import nn

from ..blocks import BLOCK_TYPES, ConvStem, PatchEmbed, UniFormerBlock, batch_norm_nd

STAGE3_ATTENTION = ("global", "window", "hybrid")

__all__ = ["UniFormerConfig", "STAGE3_ATTENTION", "stage3_window_sizes", "with_stage3_attention", "UniFormerStage", "UniFormer", "checkpoint_filter_fn", "backbone_filter_fn",
           "official_to_ours"]


@dataclass(frozen=True)
class UniFormerConfig:
    """Architecture of one UniFormer (per-stage settings are 4-tuples).

    depths / dims: blocks and channels per stage (Table 1: S = (3,4,8,3) x (64,128,320,512)).
    block_types: token mixer per stage, 'local' (Eq. 5-6) or 'global' (Eq. 7).
    head_dim: channels per head of global MHRA (not stored in checkpoints: it is part of the name).
    stem / downsample: 'patch' (kernel = stride conv + LayerNorm) or 'conv' (overlapping 3x3 convs
    + BatchNorm, the S-dagger models). spatial_dims: 2 (images) or 3 (video).
    layer_scale_init: None (no layer scale) or gamma's initial value; layer_scale_local: whether
    local blocks get layer scale too (the token-labeling L model) or only global ones (B-LS).
    aux_head: token-labeling head; eval logits = head(mean) + aux_weight * max_tokens aux_head.
    out_indices: None for a classifier; stage indices (e.g. (0, 1, 2, 3)) for a dense-prediction
    backbone (§4.3): no classifier, each stage map normalized by ``out_norms`` (LayerNorm eps 1e-6,
    the official ``norm1..norm4``) and the chosen ones returned.
    stage3_attention: 'global' (every stage-3 block global), 'window' (every stage-3 block
    windowed, ``window_size`` tokens square) or 'hybrid' (windowed, but every 4th block global);
    §4.3. Stage 4 is always global. Windows change no parameter: it is a run-time choice.
    """

    depths: tuple[int, int, int, int] = (3, 4, 8, 3)
    dims: tuple[int, int, int, int] = (64, 128, 320, 512)
    block_types: tuple[str, str, str, str] = ("local", "local", "global", "global")
    head_dim: int = 64
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    stem: str = "patch"
    downsample: str = "patch"
    spatial_dims: int = 2
    in_chans: int = 3
    num_classes: int = 1000
    layer_scale_init: float | None = None
    layer_scale_local: bool = False
    aux_head: bool = False
    aux_weight: float = 0.5
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    out_indices: tuple[int, ...] | None = None
    stage3_attention: str = "global"
    window_size: int = 14

    def __post_init__(self):
        if not (len(self.depths) == len(self.dims) == len(self.block_types) == 4):
            raise ValueError("depths, dims and block_types need one entry per stage (4)")
        for t in self.block_types:
            if t not in BLOCK_TYPES:
                raise ValueError(f"unknown block type {t!r}; expected one of {BLOCK_TYPES}")
        for name in ("stem", "downsample"):
            if getattr(self, name) not in ("patch", "conv"):
                raise ValueError(f"{name} must be 'patch' or 'conv', got {getattr(self, name)!r}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.stage3_attention not in STAGE3_ATTENTION:
            raise ValueError(f"stage3_attention must be one of {STAGE3_ATTENTION}, got {self.stage3_attention!r}")
        if self.out_indices is not None and (not self.out_indices or not set(self.out_indices) <= {0, 1, 2, 3}):
            raise ValueError(f"out_indices must be stage indices in 0..3, got {self.out_indices}")

    def replace(self, **changes) -> "UniFormerConfig":
        """A copy with ``changes`` applied (raises TypeError for unknown fields)."""
        return dataclasses.replace(self, **changes)


def _patch_geometry(stage: int, spatial_dims: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, padding) of stage ``stage``'s patch embedding.

    Stage 0: 4x4 stride 4 (images); 3x4x4 stride 2x4x4, padding 1 in time (video, halves T).
    Stages 1-3: 2x2 stride 2; 1x2x2 for video (time untouched). Paper §4.1-4.2.
    """
    if spatial_dims == 2:
        return ((4, 4), (4, 4), (0, 0)) if stage == 0 else ((2, 2), (2, 2), (0, 0))
    return ((3, 4, 4), (2, 4, 4), (1, 0, 0)) if stage == 0 else ((1, 2, 2), (1, 2, 2), (0, 0, 0))


def stage3_window_sizes(cfg: UniFormerConfig) -> list[int | None]:
    """Window size of each stage-3 block (None = global): 'hybrid' makes block i global when
    (i + 1) % 4 == 0 (official rule: S global at 3, 7; B at 3, 7, 11, 15, 19)."""
    n = cfg.depths[2]
    if cfg.stage3_attention == "global":
        return [None] * n
    if cfg.stage3_attention == "window":
        return [cfg.window_size] * n
    return [None if (i + 1) % 4 == 0 else cfg.window_size for i in range(n)]


class UniFormerStage(nn.Module):
    """A downsampling layer followed by ``depth`` UniFormer blocks of one type.

    ``forward``: (B, C_in, *S) -> (B, C_out, *S / stride).
    """

    def __init__(self, cfg: UniFormerConfig, stage: int, drop_path_rates: Sequence[float]):
        super().__init__()
        in_dim = cfg.in_chans if stage == 0 else cfg.dims[stage - 1]
        dim, sd = cfg.dims[stage], cfg.spatial_dims
        kind = cfg.stem if stage == 0 else cfg.downsample
        if kind == "conv":
            self.downsample = ConvStem(in_dim, dim, stem=stage == 0, spatial_dims=sd)
        else:
            kernel, stride, padding = _patch_geometry(stage, sd)
            self.downsample = PatchEmbed(in_dim, dim, kernel, stride, padding, spatial_dims=sd)
        block_type = cfg.block_types[stage]
        use_ls = cfg.layer_scale_init is not None and (block_type == "global" or cfg.layer_scale_local)
        windows = stage3_window_sizes(cfg) if stage == 2 else [None] * len(drop_path_rates)
        self.blocks = nn.Sequential(*[
            UniFormerBlock(dim, block_type, sd, cfg.head_dim, cfg.mlp_ratio, cfg.qkv_bias, cfg.drop_rate,
                           cfg.attn_drop_rate, dpr, cfg.layer_scale_init if use_ls else None, window_size=ws)
            for dpr, ws in zip(drop_path_rates, windows)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class UniFormer(nn.Module):
    """UniFormer classifier (paper Fig. 3): 4 stages, BatchNorm, global average pool, linear head.

    Input (B, in_chans, H, W) for ``spatial_dims=2`` or (B, in_chans, T, H, W) for 3, any size
    the strides allow (sizes are floored by the kernel=stride patch embeddings, ceil-divided by
    conv stems). Output logits (B, num_classes). ``forward_stages`` gives the four stage maps
    (strides 4, 8, 16, 32) for dense heads and explanations.
    """

    def __init__(self, cfg: UniFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.dims[-1]
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        starts = [sum(cfg.depths[:i]) for i in range(4)]
        self.stages = nn.ModuleList(
            UniFormerStage(cfg, i, dpr[starts[i]:starts[i] + cfg.depths[i]]) for i in range(4))
        self.aux_head = None
        if cfg.out_indices is None:
            self.norm = batch_norm_nd(cfg.spatial_dims)(self.num_features)
            self.head_drop = nn.Dropout(cfg.drop_rate)
            self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
            if cfg.aux_head:
                self.aux_head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        else:
            self.out_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-6) for d in cfg.dims)
        self.apply(self._init_weights)

    @property
    def is_backbone(self) -> bool:
        """True for a dense-prediction backbone (``cfg.out_indices`` set): forward returns maps."""
        return self.cfg.out_indices is not None

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``head`` (and ``aux_head``) with fresh ones for ``num_classes`` (0: no head)."""
        self.num_classes = num_classes
        self.cfg = self.cfg.replace(num_classes=num_classes)
        make = (lambda: nn.Linear(self.num_features, num_classes)) if num_classes > 0 else nn.Identity
        self.head = make()
        if self.aux_head is not None:
            self.aux_head = make()
        for m in (self.head, self.aux_head):
            if m is not None:
                m.apply(self._init_weights)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, *S) -> the 4 stage outputs [(B, dims[i], *S / stride_i)], strides 4, 8, 16, 32."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> normalized last-stage map (B, num_features, *S / 32)."""
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Last-stage map (B, C, *S) -> logits (B, num_classes), or pooled (B, C) if ``pre_logits``.

        Token-labeling models add ``aux_weight`` x the max over tokens of ``aux_head`` (LV-ViT rule).
        """
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        pooled = tokens.mean(1)  # (B, C)
        if pre_logits:
            return pooled
        logits = self.head(self.head_drop(pooled))
        if self.aux_head is not None:
            logits = logits + self.cfg.aux_weight * self.aux_head(tokens).amax(1)
        return logits

    def forward_dense(self, stage_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone output: the ``out_indices`` stage maps, each LayerNorm-ed over channels
        [(B, dims[i], *S / stride_i)]."""
        return [self.out_norms[i](stage_maps[i].movedim(1, -1)).movedim(-1, 1) for i in self.cfg.out_indices]

    def forward(self, x: torch.Tensor):
        """Classifier: (B, C, *S) -> logits (B, num_classes). Backbone: -> list of stage maps."""
        if self.is_backbone:
            return self.forward_dense(self.forward_stages(x))
        return self.forward_head(self.forward_features(x))


# --- official checkpoint names -> ours ---------------------------------------------------------

# Applied to the part of a key after `blocks{k}.{j}.`; the official names first.
_BLOCK_KEY_RULES = (
    (re.compile(r"^pos_embed\."), "dpe.proj."),
    (re.compile(r"^conv1\."), "mhra.value."),
    (re.compile(r"^conv2\."), "mhra.proj."),
    (re.compile(r"^attn\.(weight|bias)$"), r"mhra.affinity.\1"),
    (re.compile(r"^attn\.(qkv|proj)\."), r"mhra.\1."),
    (re.compile(r"^mlp\."), "ffn."),
    (re.compile(r"^gamma_([12])$"), r"ls\1.gamma"),
)
_BLOCK_PREFIX = re.compile(r"^blocks([1-4])\.(\d+)\.(.*)$")
_EMBED_PREFIX = re.compile(r"^patch_embed([1-4])\.(.*)$")
_OUT_NORM_PREFIX = re.compile(r"^norm([1-4])\.(.*)$")


def official_to_ours(key: str) -> str:
    """Map one official state-dict key to our module path (other keys are returned unchanged).

    ``patch_embed{k}.*`` -> ``stages.{k-1}.downsample.*``; ``blocks{k}.{j}.*`` ->
    ``stages.{k-1}.blocks.{j}.*`` with pos_embed -> dpe.proj, conv1/attn/conv2 -> mhra.value/
    affinity/proj (local), attn.qkv/proj -> mhra.qkv/proj (global), mlp -> ffn, gamma_i -> lsi.gamma;
    dense backbones' ``norm{k}.*`` -> ``out_norms.{k-1}.*``.
    """
    m = _EMBED_PREFIX.match(key)
    if m:
        return f"stages.{int(m[1]) - 1}.downsample.{m[2]}"
    m = _OUT_NORM_PREFIX.match(key)
    if m:  # dense backbones' per-stage output norms
        return f"out_norms.{int(m[1]) - 1}.{m[2]}"
    m = _BLOCK_PREFIX.match(key)
    if not m:
        return key
    rest = m[3]
    for pattern, repl in _BLOCK_KEY_RULES:
        rest, n = pattern.subn(repl, rest)
        if n:
            break
    return f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{rest}"


def is_official_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    """True when the keys use the official names (``patch_embed1.*`` / ``blocks1.*``)."""
    return any(k.startswith(("patch_embed1.", "blocks1.")) for k in state_dict)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Convert an official UniFormer state dict to our names and shapes (ours pass unchanged).

    Layer-scale gammas are flattened to (C,) (the official local blocks store (1, C, 1, 1)).
    """
    if not is_official_state_dict(state_dict):
        return dict(state_dict)
    out = {}
    for key, value in state_dict.items():
        new_key = official_to_ours(key)
        if new_key.endswith(".gamma"):
            value = value.reshape(-1)
        out[new_key] = value
    return out


def backbone_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``checkpoint_filter_fn`` for dense backbones: from a full mmseg/mmdet/mmpose checkpoint
    (keys ``backbone.*``, ``neck.*``, ``decode_head.*`` ...) only the ``backbone.*`` entries are
    taken (prefix removed); a backbone-only state dict passes as is."""
    if any(k.startswith("backbone.") for k in state_dict):
        state_dict = {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    return checkpoint_filter_fn(state_dict, model)


def with_stage3_attention(model: UniFormer, mode: str, window_size: int | None = None) -> UniFormer:
    """The same network with stage-3 attention ``mode`` ('global' / 'window' / 'hybrid'), sharing
    ``model``'s parameter tensors (no copy; ``model`` itself is unchanged, so requests using
    different modes never interfere). The official "w32" / "h32" results are the global
    checkpoints run this way (OFFICIAL_NOTES §3.4). Raises ValueError for an unknown mode.
    """
    cfg = model.cfg.replace(stage3_attention=mode, window_size=window_size or model.cfg.window_size)
    twin = type(model)(cfg)
    twin.load_state_dict(model.state_dict(), strict=True, assign=True)
    for attr in ("pretrained_cfg", "model_name", "weights_info"):
        if hasattr(model, attr):
            setattr(twin, attr, getattr(model, attr))
    return twin.train(model.training)
