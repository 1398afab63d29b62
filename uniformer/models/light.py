"""Light-weight UniFormer (XXS / XS, paper §5, Tables 11-14): hourglass token shrinking in stages 3-4.

The H-UniFormer block (§5.1) keeps the tokens that a score token finds important, fuses the rest
into one representative token, runs global MHRA + FFN on [score token, kept tokens, representative],
gives every fused token its representative's update ("fast update") and restores the original
token order (token recovering). The importance of token j is the score token's attention to it,
averaged over heads (Eq. 9), kept as a running mean over blocks: A <- (1 - t) A + t A_new (§5.2).

Unlike the official code (module-level globals, in-place updates, token indices carried as
floats), the scores and orders here travel with the forward as values: a forward is a pure
function of input and weights, safe to run from several threads at once, and index bookkeeping
is integer and exact whatever the autocast dtype. The keep ratio can be changed per call.

File order follows timm: block -> model -> configs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import UniFormerBlock
from ..registry import ModelEntry, PretrainedCfg, get_entry, register_model
from .uniformer import UniFormer, UniFormerConfig, backbone_filter_fn, checkpoint_filter_fn, run_block

__all__ = ["HourglassBlock", "ShrinkState", "BlockTrace", "ShrinkTap", "UniFormerLightConfig", "UniFormerLight",
           "light_config", "is_light"]


@dataclass
class BlockTrace:
    """What one H-UniFormer block did (batch-first tensors, float32 scores, int64 indices).

    scores: (B, N) importance of each token (original order) used to rank them, before this
    block's update; kept: (B, K) indices of the kept tokens in the block's token grid, by decreasing
    score (ties: lower index first, in every runtime); fused: (B, N - K) indices of the tokens fused
    into the representative; fuse_weights: (B, N - K) their weights in it (sum to 1); grid: the
    token grid (H, W) or (T, H, W), N = prod;
    tokens_processed: tokens attention ran on (score token and representative included).
    """

    stage: int
    block: int
    grid: tuple[int, ...]
    keep_ratio: float
    scores: torch.Tensor | None
    kept: torch.Tensor
    fused: torch.Tensor
    fuse_weights: torch.Tensor
    tokens_processed: int


@dataclass
class ShrinkState:
    """Per-forward state of token shrinking: the score token (B, 1, C), the running importance
    scores (B, N) in float32 (None before the first stage-3 block), and an optional trace list."""

    cls: torch.Tensor
    scores: torch.Tensor | None = None
    trace: list[BlockTrace] | None = None


class ShrinkTap(nn.Module):
    """Hook point of an hourglass block, no parameters and no numerics: ``forward(tokens, trace)``
    returns ``tokens`` itself.

    ``HourglassBlock`` passes through it, once per forward, the normalized token sequence its MHRA
    attends over, tokens (B, M, C) = [score token, kept tokens by decreasing score, representative]
    (M = K + 2) or [score token, all N tokens in grid order] (no shrinking, M = N + 1), together
    with the block's :class:`BlockTrace` (grid, kept / fused indices, fuse weights). Forward
    (pre-)hooks on it see what the attention ran on without the model keeping a trace; this is how
    :func:`uniformer.explain.capture_attention` records the light models' attention (§5.1).
    """

    def forward(self, tokens: torch.Tensor, trace: BlockTrace) -> torch.Tensor:
        return tokens


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, C), index (B, M) -> x[b, index[b]] (B, M, C)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class HourglassBlock(UniFormerBlock):
    """H-UniFormer block (§5.1): a global UniFormer block with token shrinking and recovering.

    keep_ratio: fraction of tokens kept (1 = no shrinking: all tokens + the score token);
    trade_off: t of the running score update; pool_scores: 2x2-average-pool the scores after the
    block (last stage-3 block, to follow the stage-4 downsampling; sum preserved).
    ``forward(x, state, keep_ratio=None)``: (B, C, *S) map + ShrinkState -> same shapes.
    Same parameters (and checkpoint keys) as a global ``UniFormerBlock``; ``shrink_tap`` (a
    :class:`ShrinkTap`, no parameters) is where hooks see the token set the MHRA attends over.
    """

    def __init__(self, dim: int, keep_ratio: float = 0.5, trade_off: float = 0.5, pool_scores: bool = False,
                 spatial_dims: int = 2, **kwargs):
        super().__init__(dim, "global", spatial_dims, **kwargs)
        self.keep_ratio = keep_ratio
        self.trade_off = trade_off
        self.pool_scores = pool_scores
        self.spatial_dims = spatial_dims
        self.shrink_tap = ShrinkTap()

    def _update_scores(self, old: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
        return new if old is None else (1 - self.trade_off) * old + self.trade_off * new

    def _attend(self, t: torch.Tensor, record: BlockTrace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 2-3 on tokens t (B, M, C): returns (new t, update of the last token, score row).
        The normalized tokens pass through ``shrink_tap`` (identity) with ``record``."""
        y, row = self.mhra.forward_with_query0_attention(self.shrink_tap(self.norm1(t), record))
        y = self.ls1(y)
        t = t + self.drop_path(y)
        z = self.ls2(self.ffn(self.norm2(t)))
        t = t + self.drop_path(z)
        return t, y[:, -1:] + z[:, -1:], row

    def forward(self, x: torch.Tensor, state: ShrinkState, keep_ratio: float | None = None):
        x = x + self.dpe(x)  # Eq. 1
        B, C, *grid = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, C, *S) -> (B, N, C)
        N = tokens.shape[1]
        ratio = self.keep_ratio if keep_ratio is None or self.keep_ratio == 1 else keep_ratio
        keep = int(N * ratio)
        scores = state.scores
        shrink = not (scores is None or keep >= N)
        if not shrink:
            # no shrinking: [score token, all tokens]
            kept = torch.arange(N, device=x.device).expand(B, N)
            fused = kept[:, :0]
            weights = fused.float()
            processed = N + 1
        else:
            # (B, N) most important first; ties (e.g. the uniform first row of an untrained, zero score
            # token) go to the lower token index, as ONNX TopK does: the order is the same in every runtime
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices
            sorted_tokens, sorted_scores = _gather_tokens(tokens, order), scores.gather(1, order)
            kept, fused = order[:, :keep], order[:, keep:]
            dropped = sorted_tokens[:, keep:]
            weights = sorted_scores[:, keep:] / sorted_scores[:, keep:].sum(1, keepdim=True)  # (B, N - K)
            rep = (weights.unsqueeze(-1).to(dropped.dtype) * dropped).sum(1, keepdim=True)  # (B, 1, C)
            processed = keep + 2
        record = BlockTrace(-1, -1, tuple(grid), ratio, None if scores is None else scores.detach(),
                            kept.detach(), fused.detach(), weights.detach(), processed)
        if not shrink:
            t, _, row = self._attend(torch.cat([state.cls, tokens], 1), record)
            new_scores = self._update_scores(scores, row)
            cls, tokens = t[:, :1], t[:, 1:]
        else:
            t, fast_update, row = self._attend(torch.cat([state.cls, sorted_tokens[:, :keep], rep], 1), record)
            dropped = dropped + fast_update  # fused tokens receive the representative's update
            sorted_scores = torch.cat([self._update_scores(sorted_scores[:, :keep], row[:, :keep]),
                                       sorted_scores[:, keep:]], 1)
            cls = t[:, :1]
            inverse = order.argsort(dim=1)  # token recovering: back to the original order
            tokens = _gather_tokens(torch.cat([t[:, 1:-1], dropped], 1), inverse)
            new_scores = sorted_scores.gather(1, inverse)
        if state.trace is not None:
            state.trace.append(record)
        x = tokens.transpose(1, 2).reshape(B, C, *grid)  # (B, N, C) -> (B, C, *S)
        if self.pool_scores:
            new_scores = self._pool(new_scores, grid)
        return x, ShrinkState(cls, new_scores, state.trace)

    def _pool(self, scores: torch.Tensor, grid: list[int]) -> torch.Tensor:
        """Average-pool the score map 2x2 in space (stage-4 downsampling), keeping its sum."""
        B = scores.shape[0]
        kernel = (2, 2) if self.spatial_dims == 2 else (1, 2, 2)
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        pooled = pool(scores.reshape(B, 1, *grid), kernel).reshape(B, -1)  # (B, N / 4)
        return pooled * (scores.sum(1, keepdim=True) / pooled.sum(1, keepdim=True))


@dataclass(frozen=True)
class UniFormerLightConfig(UniFormerConfig):
    """UniFormerConfig plus token shrinking: per stage-3/4 block keep ratio and score trade-off.

    Official XXS: keep (1, 0.5 x 7) / (0.5 x 2), trade-off the same lists (docs/official.md §3.1).
    """

    keep_ratios: tuple[tuple[float, ...], tuple[float, ...]] = ((1.0,) + (0.5,) * 7, (0.5,) * 2)
    trade_offs: tuple[tuple[float, ...], tuple[float, ...]] = ((1.0,) + (0.5,) * 7, (0.5,) * 2)

    def __post_init__(self):
        super().__post_init__()
        for stage, ratios, offs in zip((2, 3), self.keep_ratios, self.trade_offs):
            if len(ratios) != self.depths[stage] or len(offs) != self.depths[stage]:
                raise ValueError(f"stage {stage + 1}: need {self.depths[stage]} keep ratios and trade-offs")
        if self.keep_ratios[0][0] != 1:
            raise ValueError("the first stage-3 block must keep every token (it initializes the scores)")


class UniFormerLight(UniFormer):
    """Light-weight UniFormer (H-UniFormer, §5): stages 1-2 local, stages 3-4 hourglass blocks.

    ``forward(x, keep_ratio=None)``: (B, 3, H, W) -> logits (B, num_classes); ``keep_ratio``
    replaces every shrinking block's ratio for this call (e.g. 1.0: no shrinking). Eval logits are
    ``head(mean(norm(x)))``; ``cls_token``, ``cls_upsample``, ``norm_cls``, ``head_cls`` are the
    score token's path (trained with an extra loss officially; kept for exact checkpoints).
    ``forward_trace`` also returns the shrinking trace of every hourglass block.
    """

    def __init__(self, cfg: UniFormerLightConfig):
        super().__init__(cfg)
        dims = cfg.dims
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        for stage in (2, 3):
            ratios, offs = cfg.keep_ratios[stage - 2], cfg.trade_offs[stage - 2]
            start = sum(cfg.depths[:stage])
            self.stages[stage].blocks = nn.Sequential(*[
                HourglassBlock(dims[stage], ratios[i], offs[i], pool_scores=(stage == 2 and i == cfg.depths[2] - 1),
                               spatial_dims=cfg.spatial_dims, head_dim=cfg.head_dim, mlp_ratio=cfg.mlp_ratio,
                               qkv_bias=cfg.qkv_bias, drop=cfg.drop_rate, attn_drop=cfg.attn_drop_rate,
                               drop_path=dpr[start + i], layer_scale_init=cfg.layer_scale_init)
                for i in range(cfg.depths[stage])])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims[2]))
        self.cls_upsample = nn.Linear(dims[2], dims[3])
        new = [self.stages[2], self.stages[3], self.cls_upsample]
        if not self.is_backbone:
            self.norm_cls = nn.LayerNorm(dims[3])
            self.head_cls = nn.Linear(dims[3], cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
            new += [self.norm_cls, self.head_cls]
        for m in new:
            m.apply(self._init_weights)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        self.head_cls = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _stage_maps(self, x: torch.Tensor, last: int, keep_ratio: float | None = None,
                    trace: list | None = None) -> list[torch.Tensor]:
        """(B, 3, *S) -> the maps of stages 0..``last``; the score token and scores travel through
        stages 3-4 as a :class:`ShrinkState` (values, no module state); ``trace`` collects one
        BlockTrace per hourglass block run."""
        outs = []
        state = None
        for s, stage in enumerate(self.stages[:last + 1]):
            x = stage.downsample(x)
            if s < 2:
                x = self._run_blocks(stage, x)
            else:
                if state is None:
                    state = ShrinkState(self.cls_token.expand(x.shape[0], -1, -1), None, trace)
                else:
                    state = ShrinkState(self.cls_upsample(state.cls), state.scores, trace)
                for b, block in enumerate(stage.blocks):
                    n_before = len(trace) if trace is not None else 0
                    x, state = run_block(block, x, state, keep_ratio, checkpointed=stage.grad_checkpointing)
                    if trace is not None and len(trace) > n_before:
                        trace[-1].stage, trace[-1].block = s, b
            outs.append(x)
        return outs

    @staticmethod
    def _run_blocks(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        for block in stage.blocks:
            x = run_block(block, x, checkpointed=stage.grad_checkpointing)
        return x

    def forward_stages(self, x: torch.Tensor, keep_ratio: float | None = None) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the 4 stage maps (strides 4, 8, 16, 32), no norm."""
        return self._stage_maps(x, len(self.stages) - 1, keep_ratio)

    def forward_features(self, x: torch.Tensor, keep_ratio: float | None = None) -> torch.Tensor:
        """(B, 3, *S) -> normalized last-stage map (see :meth:`UniFormer.forward_features`)."""
        return self._norm_map(len(self.stages) - 1, self.forward_stages(x, keep_ratio)[-1])

    def forward(self, x: torch.Tensor, keep_ratio: float | None = None):
        if self.is_backbone:
            return self.forward_intermediates(x, self.cfg.out_indices, norm=True, stop_early=True,
                                              intermediates_only=True, keep_ratio=keep_ratio)
        return self.forward_head(self.forward_features(x, keep_ratio))

    def forward_trace(self, x: torch.Tensor, keep_ratio: float | None = None) -> tuple[torch.Tensor, list[BlockTrace]]:
        """Logits (B, num_classes) (feature extractors: the stage maps) and one BlockTrace per
        hourglass block, in forward order."""
        trace: list[BlockTrace] = []
        outs = self._stage_maps(x, len(self.stages) - 1, keep_ratio, trace)
        if self.is_backbone:
            return self.forward_dense(outs), trace
        return self.forward_head(self._norm_map(len(outs) - 1, outs[-1])), trace


# --- registered checkpoints ----------------------------------------------------------------------

def light_config(size: str) -> UniFormerLightConfig:
    """Architecture of XXS / XS (Table 11; docs/official.md §3.1): conv stem, mlp ratio 3."""
    if size == "xxs":
        return UniFormerLightConfig(depths=(2, 5, 8, 2), dims=(56, 112, 224, 448), head_dim=28, mlp_ratio=3.0,
                                    stem="conv")
    ratios = ((1.0,) + (0.5,) * 8, (0.5,) * 3)
    return UniFormerLightConfig(depths=(3, 5, 9, 3), dims=(64, 128, 256, 512), head_dim=32, mlp_ratio=3.0,
                                stem="conv", keep_ratios=ratios, trade_offs=ratios)


#: Google Drive file id of each official checkpoint: the links of the official model-zoo READMEs
#: (Sense-X/UniFormer), downloaded by :mod:`uniformer.downloads`.
_DRIVE_IDS = {
    "uniformer_xs_192_in1k": "1Ce2Dk9-k_-sHt5dXp-gfNOEK37Jdcffv",
    "uniformer_xs_224_in1k": "1CwQ91fjuAu3Rhn3zV4vjAmQ8v36AfYPT",
    "uniformer_xxs_128_in1k": "1Cr7uB5hUck1BHioEROWZjfLpYRwg4Zps",
    "uniformer_xxs_160_in1k": "1CsXCzfVFPyM2mY8BA_1fO3q_VBngnF44",
    "uniformer_xxs_192_in1k": "1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_",
    "uniformer_xxs_224_in1k": "1Cw9r_3c30N-esFI8RFYa6rQXJrr1rAHY",
}

def _register() -> None:
    """Register the light-weight image classifiers and backbones (called once, on import)."""
    drive = ("The official file is on Google Drive / Baidu Cloud "
             "(Sense-X/UniFormer, image_classification/README.md, light-weight models).")
    sizes = {"xxs": (128, 160, 192, 224), "xs": (192, 224)}
    reference = {"uniformer_xxs_160_in1k": "light_xxs", "uniformer_xs_224_in1k": "light_xs"}
    hub = {"uniformer_xxs_160_in1k": "Andy1621/uniformer_light:uniformer_xxs_160_in1k.pth"}
    top1 = {("xxs", 128): 76.8, ("xxs", 160): 79.1, ("xxs", 192): 79.9, ("xxs", 224): 80.6,  # Table 11
            ("xs", 192): 81.5, ("xs", 224): 82.0}
    for size, resolutions in sizes.items():
        for res in resolutions:
            name = f"uniformer_{size}_{res}_in1k"
            register_model(ModelEntry(
                name=name, build=UniFormerLight, config=light_config(size),
                pretrained=PretrainedCfg(hub=hub.get(name), drive_id=_DRIVE_IDS[name],
                                         download_hint=None if name in hub else drive,
                                         input_size=(3, res, res), crop_pct=224 / 256, top1=top1[size, res],
                                         reference_variant=reference.get(name)),
                filter_fn=checkpoint_filter_fn, task="image-classification",
                description=f"UniFormer-{size.upper()} light-weight, hourglass token shrinking, {res}px"))

    backbone_hint = ("Backbone weights come inside the official dense checkpoints (fpn_{0}, mask_rcnn_1x_{0}; "
                     "Google Drive, Sense-X/UniFormer semantic_segmentation / object_detection READMEs); "
                     "their 'backbone.' entries are used.")
    for size in sizes:
        register_model(ModelEntry(
            name=f"uniformer_{size}_backbone", build=UniFormerLight,
            config=light_config(size).replace(out_indices=(0, 1, 2, 3)),
            pretrained=PretrainedCfg(download_hint=backbone_hint.format(size),
                                     holders=(f"fpn_{size}", f"mask_rcnn_1x_{size}"), input_size=(3, 512, 512),
                                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), label_set="none",
                                     num_classes=0, reference_variant=(f"seg_{size}", f"det_{size}")),
            filter_fn=backbone_filter_fn, task="backbone", head_prefixes=(),
            description=f"UniFormer-{size.upper()} dense-prediction backbone (4 normalized stage maps, strides 4-32)"))


_register()


def is_light(model: nn.Module | object | str) -> bool:
    """True for a light-weight UniFormer (XXS / XS: hourglass blocks with token shrinking, paper
    §5.1), read from the config: ``model`` is a model (its ``cfg``), a config, or a registered model
    name. Dense models (segmentation, detection, pose) answer for their backbone (``cfg.backbone``).
    The one place the question is decided (image, video and dense models alike)."""
    if isinstance(model, str):
        cfg = get_entry(model).config
    elif isinstance(model, nn.Module):
        cfg = getattr(model, "cfg", None)
    else:
        cfg = model
    return isinstance(getattr(cfg, "backbone", cfg), UniFormerLightConfig)
