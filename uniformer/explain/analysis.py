"""One forward, kept as data: what every explanation view of one (model, image) pair needs.

:func:`analyze` runs the model once on the checkpoint's eval crop of an image inside
:func:`~uniformer.explain.capture_attention` and returns an :class:`Analysis`: the captured
global-MHRA attention (Eq. 7), the local-MHRA kernels a_n (Eq. 6), the four stage maps, the
logits and the pixel <-> token geometry. Query maps, distances, rollout and PCA views are pure
functions of an ``Analysis``, so moving a layer or head slider never runs the network again.

Every 2-D UniFormer is covered: plain classifiers and backbones, dense backbones with windowed or
hybrid stage 3 (§4.3) and the light models' hourglass blocks (§5.1). Their attention is stored on
the block's token grid like a plain global layer's, so every view works unchanged; how it maps
there (block-sparse windows, shrunk token sets) is in :mod:`uniformer.explain.capture`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..blocks import GlobalMHRA, LocalMHRA
from ..data import eval_transform, get_labels, load_image
from .capture import capture_attention
from .geometry import InputGeometry, input_geometry

__all__ = ["LOCAL", "GLOBAL", "NOT_CAPTURED", "WINDOW", "HOURGLASS", "LayerInfo", "Analysis", "analyze",
           "class_names_of"]

LOCAL, GLOBAL, NOT_CAPTURED = "local", "global", "not captured"
#: ``LayerInfo.variant`` of global layers whose attention is not over all N tokens.
WINDOW, HOURGLASS = "window", "hourglass"


@dataclass(frozen=True)
class LayerInfo:
    """The relation aggregator (MHRA) of one UniFormer block.

    name: module path of the MHRA (``'stages.2.blocks.0.mhra'``); stage, block: 0-based indices;
    kind: ``'local'`` (Eq. 6, learned kernel), ``'global'`` (Eq. 7, attention captured) or
    ``'not captured'`` (a global MHRA the capture did not record; ``Analysis.skipped`` says why);
    grid: token grid (h, w); dim: channels; heads: global: the MHRA's heads; local: ``dim //
    head_dim`` display groups of ``head_dim`` consecutive channels (in the paper every local
    channel is a head, §3.2.1); variant: for global layers whose attention does not span all N
    tokens, ``'window'`` (windowed MHRA of dense backbones, §4.3: block-sparse, edge rows may sum
    to < 1) or ``'hourglass'`` (light models, §5.1: mapped from the shrunk token set; rows sum to 1
    minus the score token's share); None otherwise (see :mod:`uniformer.explain.capture`).
    """

    name: str
    stage: int
    block: int
    kind: str
    grid: tuple[int, int]
    dim: int
    heads: int
    variant: str | None = None

    @property
    def label(self) -> str:
        """Human name with 1-based numbers as in the paper: 'stage 3 · block 2 (global)',
        'stage 3 · block 2 (global, hourglass)' for a variant."""
        kind = self.kind if self.variant is None else f"{self.kind}, {self.variant}"
        return f"stage {self.stage + 1} \u00b7 block {self.block + 1} ({kind})"


@dataclass
class Analysis:
    """Everything one forward of ``model_name`` on ``image`` produced (batch of one, CPU values).

    image: the original RGB image (H, W, 3) uint8; geometry: original pixel <-> model input <->
    token mapping; input: the normalized model input (1, 3, S_h, S_w) float32; logits:
    (num_classes,) float32, None for backbones; label_set: name of the checkpoint's label set;
    class_names: the class names in head order (the checkpoint's own for project-trained exports,
    ``PretrainedCfg.class_names``), None when unknown; layers: every block's MHRA in forward order;
    attention: {layer name: (heads, N, N) float32} softmax probabilities of Eq. 7 on the layer's
    token grid (row i = how query token i aggregates the N tokens; rows sum to 1, except windowed
    and hourglass layers, where the rest went to padding / the score token, see ``LayerInfo.variant``);
    kept_tokens: {hourglass layer name: (K,) int64} grid indices of the tokens the block kept (the
    others were fused into one representative token, whose attention row they share); kernels:
    {layer name: (C, k, k) float32} the depthwise weights of each local MHRA = a_n of Eq. 6 per
    channel (cross-correlation: token i takes weight ``kernel[j - i + k // 2]`` from token j);
    features: the four stage output maps [(C_s, h_s, w_s)]; skipped: {layer name: why its
    attention is absent}; forward_ms: wall time of the captured forward.
    """

    model_name: str
    image: np.ndarray
    geometry: InputGeometry
    input: torch.Tensor
    logits: np.ndarray | None
    label_set: str
    layers: list[LayerInfo]
    attention: dict[str, np.ndarray]
    kernels: dict[str, np.ndarray]
    features: list[np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)
    forward_ms: float = 0.0
    class_names: tuple[str, ...] | None = None
    kept_tokens: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (bytes): attention maps dominate (heads x N^2 floats per layer)."""
        arrays = [self.image, *self.attention.values(), *self.kernels.values(), *self.features,
                  *self.kept_tokens.values()]
        return sum(a.nbytes for a in arrays) + self.input.numel() * self.input.element_size()

    @property
    def image_size(self) -> tuple[int, int]:
        """(W, H) of the original image in pixels."""
        return self.image.shape[1], self.image.shape[0]

    def layer(self, key: int | str) -> LayerInfo:
        """A layer by position in :attr:`layers` or by module path. Raises KeyError / IndexError."""
        if isinstance(key, str):
            for info in self.layers:
                if info.name == key:
                    return info
            raise KeyError(f"no MHRA named {key!r}; layers: {[i.name for i in self.layers]}")
        return self.layers[key]

    def layers_of(self, kind: str | None = None, stage: int | None = None) -> list[LayerInfo]:
        """The layers of one ``kind`` and/or 0-based ``stage``, in forward order."""
        return [i for i in self.layers if (kind is None or i.kind == kind) and (stage is None or i.stage == stage)]

    def stage_grid(self, stage: int) -> tuple[int, int]:
        """Token grid (h, w) of 0-based ``stage`` (its output map)."""
        return tuple(self.features[stage].shape[-2:])

    def stride(self, grid: tuple[int, int]) -> tuple[float, float]:
        """Model-input pixels per token (x, y) of a token ``grid`` (h, w) tiling the crop."""
        S_h, S_w = self.geometry.input_size
        return S_w / grid[1], S_h / grid[0]

    def class_label(self, index: int) -> str:
        """Name of class ``index``: :attr:`class_names` (the checkpoint's own names), else the label
        set's (``get_labels``), else ``'class {index}'`` when neither names it."""
        names = self.class_names
        if names is None:
            try:
                names = get_labels(self.label_set)
            except KeyError:
                names = ()
        return names[index] if 0 <= index < len(names) else f"class {index}"

    def top_classes(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` most probable classes as (index, label, softmax probability); [] for backbones.
        Labels from :meth:`class_label`."""
        if self.logits is None:
            return []
        p = torch.from_numpy(self.logits).double().softmax(-1)
        values, indices = p.topk(min(k, p.numel()))
        return [(int(i), self.class_label(int(i)), float(v)) for v, i in zip(values, indices)]


def _why_not_captured(module: nn.Module) -> str:
    return f"{type(module).__name__}: its MHRA did not run through the attention capture in this forward"


def class_names_of(cfg) -> tuple[str, ...] | None:
    """Class names of a pretrained cfg in head order: ``cfg.class_names()`` (a project export's
    own names, else its label set's), or ``get_labels(cfg.label_set)`` for cfg objects without it
    (the fallback of :func:`uniformer.inference.predict_images` and the app); None when the label
    set is unknown and the cfg names no classes."""
    try:
        return tuple(cfg.class_names()) if hasattr(cfg, "class_names") else tuple(get_labels(cfg.label_set))
    except KeyError:
        return None


@torch.no_grad()
def analyze(model: nn.Module, image, pretrained_cfg=None, model_name: str | None = None) -> Analysis:
    """Run ``model`` once on ``image`` with attention capture -> :class:`Analysis`.

    image: anything :func:`uniformer.data.load_image` decodes (path, bytes, PIL image, array);
    raises its ``ImageDecodeError`` for bad files. pretrained_cfg: the preprocessing (default
    ``model.pretrained_cfg``, as set by ``create_model``; pass a copy with another ``input_size``
    to run smaller). The forward is ``model.forward_stages`` then ``forward_head(norm(.))``, which
    is what ``model(x)`` computes for the 2-D classifiers (plain and light); capture does not change
    it (tested). Backbones (dense, windowed / hybrid, light) get ``logits`` None. Every global
    layer is captured, windowed and hourglass ones included (``LayerInfo.variant``). Raises
    ValueError for models that are not 2-D UniFormers.
    """
    cfg = pretrained_cfg if pretrained_cfg is not None else getattr(model, "pretrained_cfg", None)
    mcfg = getattr(model, "cfg", None)
    if cfg is None or mcfg is None or not hasattr(model, "forward_stages"):
        raise ValueError("analyze needs a UniFormer from uniformer.create_model (it reads model.pretrained_cfg)")
    if mcfg.spatial_dims != 2:
        raise ValueError("the explain views are for 2-D (image) models; this model takes video clips")
    picture = load_image(image)
    geometry = input_geometry(picture.size, cfg)
    device = next(model.parameters()).device
    x = eval_transform(cfg)(picture).unsqueeze(0).to(device)
    with capture_attention(model) as captured:
        t0 = time.perf_counter()
        maps = model.forward_stages(x)
        logits = None if getattr(model, "is_backbone", False) else model.forward_head(model.norm(maps[-1]))
        forward_ms = (time.perf_counter() - t0) * 1000
    layers, attention, kernels, skipped, kept = [], {}, {}, {}, {}
    for s, stage in enumerate(model.stages):
        grid = tuple(maps[s].shape[-2:])
        for b, block in enumerate(stage.blocks):
            name, mhra = f"stages.{s}.blocks.{b}.mhra", block.mhra
            dim = maps[s].shape[1]
            if isinstance(mhra, LocalMHRA):
                kernels[name] = mhra.affinity.weight[:, 0].detach().float().cpu().numpy()  # (C, k, k)
                layers.append(LayerInfo(name, s, b, LOCAL, grid, dim, max(1, dim // mcfg.head_dim)))
            elif isinstance(mhra, GlobalMHRA) and name in captured.maps:
                attention[name] = captured.maps[name][0].float().cpu().numpy()  # (heads, N, N)
                variant = captured.kinds.get(name)
                if name in captured.shrunk:
                    kept[name] = captured.shrunk[name].kept[0].cpu().numpy()
                layers.append(LayerInfo(name, s, b, GLOBAL, tuple(captured.spatial[name][-2:]), dim, mhra.num_heads,
                                        None if variant == GLOBAL else variant))
            else:
                skipped[name] = _why_not_captured(block)
                layers.append(LayerInfo(name, s, b, NOT_CAPTURED, grid, dim, getattr(mhra, "num_heads", 1)))
    return Analysis(
        model_name=model_name or getattr(model, "model_name", type(model).__name__),
        image=np.asarray(picture, dtype=np.uint8), geometry=geometry, input=x.detach().float().cpu(),
        logits=None if logits is None else logits[0].float().cpu().numpy(), label_set=cfg.label_set,
        layers=layers, attention=attention, kernels=kernels,
        features=[m[0].float().cpu().numpy() for m in maps], skipped=skipped, forward_ms=forward_ms,
        class_names=class_names_of(cfg), kept_tokens=kept)
