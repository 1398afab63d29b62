"""Starting points of a training run: a registry model with or without weights, a new head,
2-D weights inflated into a 3-D model, frozen parts (linear probing), gradient checkpointing,
and the parameter groups of AdamW.

Every function takes and returns plain ``nn.Module`` objects; nothing here knows about
processes or data.
"""
from __future__ import annotations

import torch
from torch import nn

from ..blocks import UniFormerBlock
from ..factory import create_model
from ..registry import get_entry

__all__ = ["build_model", "freeze", "set_train_mode", "enable_grad_checkpointing", "param_groups",
           "FrameAveragingClassifier", "classifier_prefixes"]


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the classifier: ``head.`` (plus ``aux_head.`` / the light models'
    ``head_cls.`` where present)."""
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    return tuple(f"{p}." for p in ("head", "aux_head", "head_cls") if p in names)


def build_model(model_name: str, num_classes: int, pretrained: bool = False, checkpoint_path: str | None = None,
                drop_path: float | None = None, inflate_mode: str = "mean", **model_args) -> nn.Module:
    """The model a run starts from, in training layout, with ``num_classes`` outputs.

    ``create_model(model_name, ...)`` with the registered weights (``pretrained``) or a local file
    (``checkpoint_path``: official ``.pth`` or our export); the classifier is re-initialized when
    ``num_classes`` differs from the checkpoint's. ``model_args`` override config fields; when they
    make a 2-D entry 3-D (``spatial_dims=3``) the 2-D weights are inflated over time
    (:mod:`uniformer.models.inflate`, ``inflate_mode`` 'mean' as the official video training).
    ``drop_path``: stochastic depth rate (config ``drop_path_rate``). Raises what ``create_model``
    raises (unknown name, unavailable or mismatching checkpoint).
    """
    entry = get_entry(model_name)
    if drop_path is not None:
        model_args["drop_path_rate"] = drop_path
    has_weights = pretrained or checkpoint_path is not None
    to_3d = model_args.get("spatial_dims", entry.config.spatial_dims) == 3 and entry.config.spatial_dims == 2
    if has_weights and to_3d:
        from ..models.inflate import inflate_model

        args_2d = {k: v for k, v in model_args.items() if k != "spatial_dims"}
        model_2d = create_model(model_name, pretrained=pretrained, checkpoint_path=checkpoint_path, **args_2d)
        model = create_model(model_name, num_classes=num_classes, **model_args)
        skip = classifier_prefixes(model) if model_2d.num_classes != num_classes else ()
        inflate_model(model_2d, model, inflate_mode, skip)
        model.weights_info = model_2d.weights_info.__class__(
            model_2d.weights_info.source, model_2d.weights_info.repo_id, model_2d.weights_info.filename,
            model_2d.weights_info.path, note=f"2-D weights inflated over time ({inflate_mode})"
            + (f"; classifier re-initialized for {num_classes} classes" if skip else ""))
    else:
        model = create_model(model_name, pretrained=pretrained, checkpoint_path=checkpoint_path,
                             num_classes=num_classes, **model_args)
    if getattr(model, "num_classes", num_classes) != num_classes:  # e.g. an export given with its own head
        model.reset_classifier(num_classes)
    _freeze_unused_score_head(model)
    return model.train()


def _freeze_unused_score_head(model: nn.Module) -> None:
    """The light models' score-token classifier (``norm_cls``, ``head_cls``) is not part of the
    logits (``forward`` = ``head(mean(norm(x)))``); the official light training gives it an extra
    loss, we train with the main loss only, so it gets no gradient and is frozen (DDP requires every
    trainable parameter to receive one)."""
    for name in ("norm_cls", "head_cls"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            module.requires_grad_(False)


def freeze(model: nn.Module, mode: str = "none", stages: int = 0) -> nn.Module:
    """Freeze parts of ``model`` in place (``requires_grad=False``) and return it.

    mode 'backbone': everything but the classifier (``classifier_prefixes``): linear probing.
    ``stages=k``: the first k stages (stem/downsampling included). Frozen modules also run in
    eval mode during training (see :func:`set_train_mode`): BatchNorm statistics stay fixed,
    no dropout / drop path. Raises ValueError for an unknown mode or stage count.
    """
    if mode not in ("none", "backbone"):
        raise ValueError(f"freeze mode must be 'none' or 'backbone', got {mode!r}")
    if mode == "backbone":
        heads = classifier_prefixes(model)
        if not heads:
            raise ValueError("the model has no classifier to train (a backbone?); nothing to linear-probe")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(heads))
        _freeze_unused_score_head(model)
    if stages:
        if not 0 <= stages <= len(model.stages):
            raise ValueError(f"freeze_stages must be in 0..{len(model.stages)}, got {stages}")
        for stage in list(model.stages)[:stages]:
            stage.requires_grad_(False)
    return model


def set_train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, then eval mode for every submodule whose parameters are all frozen (so a
    frozen backbone's BatchNorm keeps its statistics and its drop path is off). Returns ``model``."""
    model.train()

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            return
        for child in module.children():
            visit(child)

    visit(model)
    return model


# --- gradient checkpointing ---------------------------------------------------------------------

def enable_grad_checkpointing(model: nn.Module, enable: bool = True) -> int:
    """``model.set_grad_checkpointing(enable)`` (timm's switch, read by every stage: see
    :meth:`uniformer.models.uniformer.UniFormer.set_grad_checkpointing`); returns the number of
    UniFormer blocks that now run checkpointed (0 when switched off)."""
    model.set_grad_checkpointing(enable)
    return sum(isinstance(b, UniFormerBlock) for b in model.modules()) if enable else 0


# --- optimizer parameter groups -----------------------------------------------------------------

def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices and kernels; none on 1-D parameters (norms,
    biases, layer-scale gammas) and tokens (``cls_token``), as DeiT / the official training.
    Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("cls_token") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class FrameAveragingClassifier(nn.Module):
    """A 2-D image classifier applied to every frame of a clip, logits averaged over time (TSN-
    style, order-invariant): (B, C, T, H, W) -> (B, num_classes). The baseline that cannot tell
    the motion of :class:`~uniformer.train.data.MovingDigitsDataset` clips."""

    def __init__(self, image_model: nn.Module):
        super().__init__()
        self.image_model = image_model
        self.num_classes = getattr(image_model, "num_classes", None)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of the image model's blocks (timm's switch)."""
        self.image_model.set_grad_checkpointing(enable)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = clip.shape
        frames = clip.transpose(1, 2).reshape(B * T, C, H, W)  # (B*T, C, H, W)
        return self.image_model(frames).view(B, T, -1).mean(1)
