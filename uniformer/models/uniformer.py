"""UniFormer classifiers (paper §3-4, Table 1): four stages of UniFormer blocks, 2-D or 3-D.

File order follows timm: stages -> model -> ``checkpoint_filter_fn`` -> configs. Registered
names and their checkpoints live in :mod:`uniformer.models.image` (and later video/light files).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Sequence

import torch
from timm.layers import trunc_normal_
from timm.models._features import FeatureInfo, feature_take_indices
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ..blocks import BLOCK_TYPES, ConvStem, PatchEmbed, UniFormerBlock, batch_norm_nd

STAGE3_ATTENTION = ("global", "window", "hybrid")

__all__ = ["UniFormerConfig", "STAGE3_ATTENTION", "stage3_window_sizes", "with_stage3_attention", "UniFormerStage",
           "UniFormer", "checkpoint_filter_fn", "backbone_filter_fn", "official_to_ours", "run_block",
           "OUTPUT_FORMATS", "CLASSIFIER_PREFIXES"]

#: State-dict prefixes of a classifier's parts that a feature extractor (``features_only``) does
#: not have: the final BatchNorm, the heads, the light models' score-token classifier.
CLASSIFIER_PREFIXES = ("norm.", "head.", "aux_head.", "norm_cls.", "head_cls.")
#: ``output_fmt`` of ``forward_intermediates``: channels first or channels last, 2-D and 3-D.
OUTPUT_FORMATS = {"NCHW": False, "NCTHW": False, "NHWC": True, "NTHWC": True}


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
    out_indices: None for a classifier; stage indices (e.g. (0, 1, 2, 3)) for a feature extractor
    (timm's ``features_only``; the dense-prediction backbones of §4.3): no ``norm`` / heads, forward
    returns the chosen stage maps. stage_norms (feature extractors only): each returned map is
    LayerNorm-ed over channels by ``out_norms`` (eps 1e-6, the official dense backbones'
    ``norm1..norm4``; also what ``forward_intermediates(norm=True)`` applies); False for a
    feature extractor made from a classifier checkpoint (raw stage maps, as timm).
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
    stage_norms: bool = True
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


@contextlib.contextmanager
def _no_bn_stat_update(module: nn.Module):
    """During checkpoint recomputation: BatchNorm layers of ``module`` normalize as usual but do
    not update their running statistics a second time (momentum 0; the batch counter restored)."""
    saved = [(m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m, _, _ in saved:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def _checkpoint_contexts(module: nn.Module):
    return contextlib.nullcontext(), _no_bn_stat_update(module)


def run_block(block: nn.Module, *args, checkpointed: bool = False):
    """``block(*args)``, under ``torch.utils.checkpoint`` (non-reentrant, timm's ``checkpoint_seq``
    per block) when ``checkpointed`` and the block trains with autograd on: its activations are
    recomputed in the backward instead of kept. Gradients are unchanged; BatchNorm running
    statistics are updated once, as without checkpointing."""
    if checkpointed and block.training and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False, context_fn=functools.partial(_checkpoint_contexts, block))
    return block(*args)


class UniFormerStage(nn.Module):
    """A downsampling layer followed by ``depth`` UniFormer blocks of one type.

    ``forward``: (B, C_in, *S) -> (B, C_out, *S / stride). ``grad_checkpointing`` (set by
    ``UniFormer.set_grad_checkpointing``): each block runs under gradient checkpointing in training.
    """

    def __init__(self, cfg: UniFormerConfig, stage: int, drop_path_rates: Sequence[float]):
        super().__init__()
        self.grad_checkpointing = False
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
        x = self.downsample(x)
        if not self.grad_checkpointing:
            return self.blocks(x)
        for block in self.blocks:
            x = run_block(block, x, checkpointed=True)
        return x


class UniFormer(nn.Module):
    """UniFormer classifier (paper Fig. 3): 4 stages, BatchNorm, global average pool, linear head;
    or, with ``cfg.out_indices`` set, a feature extractor (timm's ``features_only``, the dense
    backbones of §4.3) returning stage maps.

    Input (B, in_chans, H, W) for ``spatial_dims=2`` or (B, in_chans, T, H, W) for 3, any size
    the strides allow (sizes are floored by the kernel=stride patch embeddings, ceil-divided by
    conv stems). Output: logits (B, num_classes) (classifier) or the list of ``out_indices`` stage
    maps [(B, dims[i], *S / stride_i)] (feature extractor). timm's interface:
    ``forward_features`` / ``forward_head``, ``forward_intermediates`` /
    ``prune_intermediate_layers``, ``feature_info`` (per stage ``num_chs``, ``reduction`` (spatial),
    ``module``; 3-D models also ``temporal_reduction``), ``set_grad_checkpointing``,
    ``reset_classifier``.
    """

    def __init__(self, cfg: UniFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes = 0 if cfg.out_indices is not None else cfg.num_classes
        self.num_features = cfg.dims[-1]
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        starts = [sum(cfg.depths[:i]) for i in range(4)]
        self.stages = nn.ModuleList(
            UniFormerStage(cfg, i, dpr[starts[i]:starts[i] + cfg.depths[i]]) for i in range(4))
        self.aux_head = None
        self.out_norms = None
        if cfg.out_indices is None:
            self.norm = batch_norm_nd(cfg.spatial_dims)(self.num_features)
            self.head_drop = nn.Dropout(cfg.drop_rate)
            self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
            if cfg.aux_head:
                self.aux_head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
            self.feature_info = stage_feature_info(cfg)
        else:
            if cfg.stage_norms:
                self.out_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-6) for d in cfg.dims)
            self.feature_info = FeatureInfo(stage_feature_info(cfg), cfg.out_indices)
        self.apply(self._init_weights)

    @property
    def is_backbone(self) -> bool:
        """True for a feature extractor (``cfg.out_indices`` set): forward returns stage maps."""
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

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Switch gradient checkpointing of every block on or off (timm's name): in training with
        autograd on, each block's activations are recomputed in the backward instead of kept
        (memory ~ one block's activations; about one extra forward of compute). Gradients and
        BatchNorm statistics are unchanged; module names, state dicts and eval forwards too."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def grad_checkpointing(self) -> bool:
        """Whether gradient checkpointing is on (see :meth:`set_grad_checkpointing`)."""
        return any(stage.grad_checkpointing for stage in self.stages)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier ``head`` (timm's name; ``nn.Identity`` without classes). Token-labeling
        models also have ``aux_head`` and light models ``head_cls``; both follow
        :meth:`reset_classifier`."""
        return self.head

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names of parameters a fine-tuner should not decay besides the 1-D ones (norms, biases,
        layer-scale gammas, which timm's optimizer factory exempts anyway): the light models' score
        token ``cls_token`` (the official code exempts it too)."""
        return {name for name, _ in self.named_parameters() if name == "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter grouping (used by ``timm.optim.create_optimizer_v2(model, layer_decay=...)``
        for layer-wise learning-rate decay): ``stem`` = stage 1's patch embedding or conv stem;
        ``blocks`` = with ``coarse`` one group per stage, else one per block (each later stage's
        downsampling with its first block; the light models' score token with stage 3's first block
        and its up-projection with stage 4's; the final ``norm`` with the last block, timm's rule). Parameters
        that match nothing (``head``, ``aux_head``, ``head_cls``, ``norm_cls``, dense ``out_norms``)
        form the last group."""
        if coarse:
            blocks = [(r"^stages\.(\d+)", None), (r"^cls_token", (2,)), (r"^cls_upsample", (3,)),
                      (r"^norm\.", (99999,))]
        else:
            blocks = [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                      (r"^cls_token", (2, 0)), (r"^cls_upsample", (3, 0)), (r"^norm\.", (99999,))]
        return {"stem": r"^stages\.0\.downsample", "blocks": blocks}

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

    def _stage_maps(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        """(B, C, *S) -> the maps of stages 0..``last`` (later stages are not run)."""
        outs = []
        for stage in self.stages[:last + 1]:
            x = stage(x)
            outs.append(x)
        return outs

    def _norm_map(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The norm ``forward_intermediates(norm=True)`` applies to stage ``index``'s map: the stage
        LayerNorm (``out_norms``) where the model has them, the classifier's final BatchNorm on the
        last stage, else none."""
        if self.out_norms is not None:
            return self.out_norms[index](x.movedim(1, -1)).movedim(-1, 1)  # (B, C, *S) -> (B, *S, C) -> back
        if index == len(self.stages) - 1 and isinstance(getattr(self, "norm", None), nn.Module):
            return self.norm(x)
        return x

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, *S) -> the stage outputs [(B, dims[i], *S / stride_i)], strides 4, 8, 16, 32, no norm."""
        return self._stage_maps(x, len(self.stages) - 1)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              **stage_kwargs):
        """timm's ``forward_intermediates``: the stage maps chosen by ``indices`` (None: all; an int
        n: the last n; a sequence: those stages, negative from the end), in stage order.

        norm: apply :meth:`_norm_map` (stage LayerNorms of a dense backbone; a classifier's final
        BatchNorm on stage 4 only). stop_early: do not run the stages after the last one taken.
        output_fmt: 'NCHW' / 'NCTHW' (channels first, as the model computes them) or 'NHWC' /
        'NTHWC' (channels last). Returns the list of maps when ``intermediates_only``, else
        (final features, maps), the final features being ``forward_features``'s output when every
        stage ran (else the last map run). ``stage_kwargs``: ``keep_ratio`` of the light models.
        Raises ValueError for an unknown ``output_fmt``, AssertionError (timm's) for bad indices.
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output_fmt must be one of {tuple(OUTPUT_FORMATS)}, got {output_fmt!r}")
        take, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        maps = self._stage_maps(x, max_index if stop_early else last_idx, **stage_kwargs)
        intermediates = [self._norm_map(i, maps[i]) if norm else maps[i] for i in range(len(maps)) if i in take]
        if OUTPUT_FORMATS[output_fmt]:
            intermediates = [t.movedim(1, -1) for t in intermediates]  # (B, C, *S) -> (B, *S, C)
        if intermediates_only:
            return intermediates
        x = maps[-1]
        if len(maps) == len(self.stages):
            x = self._norm_map(last_idx, x)
        return x, intermediates

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """timm's ``prune_intermediate_layers``: drop the stages after the last of ``indices`` (and
        the final norm with them, or when ``prune_norm``); ``prune_head``: the classifier becomes
        ``nn.Identity`` (``reset_classifier(0)``). Returns the absolute indices kept."""
        take, max_index = feature_take_indices(len(self.stages), indices)
        if prune_norm or max_index < len(self.stages) - 1:
            if isinstance(getattr(self, "norm", None), nn.Module):
                self.norm = nn.Identity()
        self.stages = self.stages[:max_index + 1]
        if prune_head and not self.is_backbone:
            self.reset_classifier(0)
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> last-stage map (B, num_features, *S / 32), normalized (classifier: BatchNorm;
        dense backbone: its stage-4 LayerNorm; features_only model of a classifier: none)."""
        return self._norm_map(len(self.stages) - 1, self.forward_stages(x)[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Last-stage map (B, C, *S) -> logits (B, num_classes), or pooled (B, C) if ``pre_logits``.

        Token-labeling models add ``aux_weight`` x the max over tokens of ``aux_head`` (LV-ViT rule).
        """
        tokens = x.flatten(2).transpose(1, 2)  # (B, C, *S) -> (B, N, C)
        pooled = tokens.mean(1)  # (B, C)
        if pre_logits:
            return pooled
        logits = self.head(self.head_drop(pooled))
        if self.aux_head is not None:
            logits = logits + self.cfg.aux_weight * self.aux_head(tokens).amax(1)
        return logits

    def forward_dense(self, stage_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Feature-extractor output from all stage maps: the ``out_indices`` ones, each normalized
        by :meth:`_norm_map` [(B, dims[i], *S / stride_i)]."""
        return [self._norm_map(i, stage_maps[i]) for i in self.cfg.out_indices]

    def forward(self, x: torch.Tensor):
        """Classifier: (B, C, *S) -> logits (B, num_classes). Feature extractor: -> list of stage maps
        (``forward_intermediates(x, out_indices, norm=True, stop_early=True, intermediates_only=True)``)."""
        if self.is_backbone:
            return self.forward_intermediates(x, self.cfg.out_indices, norm=True, stop_early=True,
                                              intermediates_only=True)
        return self.forward_head(self.forward_features(x))


def stage_feature_info(cfg: UniFormerConfig) -> list[dict]:
    """timm's per-stage ``feature_info`` of ``cfg``: ``num_chs`` (channels), ``reduction`` (spatial
    stride: 4, 8, 16, 32), ``module`` ('stages.i'); 3-D models add ``temporal_reduction`` (the time
    stride: the stem halves T; the light models' 3-D conv downsampling halves it again per stage)."""
    info, t = [], 2
    for i, dim in enumerate(cfg.dims):
        entry = dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}")
        if cfg.spatial_dims == 3:
            if i > 0 and cfg.downsample == "conv":
                t *= 2
            entry["temporal_reduction"] = t
        info.append(entry)
    return info


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


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor],
                         model: nn.Module | None = None) -> dict[str, torch.Tensor]:
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
    checkpoints run this way (docs/official.md §3.4). Raises ValueError for an unknown mode.
    """
    cfg = model.cfg.replace(stage3_attention=mode, window_size=window_size or model.cfg.window_size)
    twin = type(model)(cfg)
    twin.load_state_dict(model.state_dict(), strict=True, assign=True)
    for attr in ("pretrained_cfg", "model_name", "weights_info"):
        if hasattr(model, attr):
            setattr(twin, attr, getattr(model, attr))
    return twin.train(model.training)
