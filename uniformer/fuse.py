"""Eval-mode fusion: fold normalization affines into the adjacent linear maps of a loaded model.

In eval mode a BatchNorm is the per-channel affine y = s * x + t (s = gamma / sqrt(var + eps),
t = beta - s * mean), and a LayerNorm's elementwise affine is y = g * n + b on the normalized n.
Followed by a 1x1 convolution / Linear W x + c, the pair is one map (W diag(s)) x + (W t + c);
preceded by a convolution, the BatchNorm folds into its kernel and bias. Folding removes a full
pass over the activations per norm (memory-bound on CPUs) and changes no result beyond float
rounding (fused == unfused to ~1e-6 relative in fp32).

What folds, per block (paper Fig. 3 / Eq. 1-3):
* local blocks: ``norm1`` (BN) into local MHRA's ``value`` 1x1 conv, ``norm2`` (BN) into the FFN's ``fc1``;
* global blocks (not the hourglass ones, whose normalized tokens the shrinking explanations read):
  the LayerNorm affines of ``norm1`` / ``norm2`` into ``qkv`` / ``fc1`` (the normalization itself
  stays; windowed MHRA keeps ``norm1``'s affine, since its zero padding comes after it);
* conv stems / conv downsampling (light models, S-dagger): each BatchNorm into the conv before it.
The patch-embedding LayerNorm stays (a normalization after the conv cannot fold into it), and so
do DPE's residual and the classifier's final norm (``forward_features`` keeps its meaning).

Use it after loading: ``fuse_for_inference(create_model(name, pretrained=True))``; official
checkpoints keep loading into the unfused model unchanged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .blocks import ConvStem, UniFormerBlock

__all__ = ["fuse_for_inference", "fold_bn_into_following", "fold_bn_into_preceding", "fold_ln_affine_into_following"]


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of ``bn`` in eval mode, each (C,): y = scale * x + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - scale * bn.running_mean
    return scale, shift


def _fold_input_affine(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make ``layer`` (Linear or 1x1 Conv, weight (C_out, C_in, 1, ...)) compute layer(scale * x + shift)."""
    w = layer.weight.reshape(layer.weight.shape[0], -1)  # (C_out, C_in): 1x1 kernels / Linear
    bias = layer.bias if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
    new_bias = bias + w @ shift
    layer.weight.copy_((w * scale).reshape(layer.weight.shape))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias)
    else:
        layer.bias.copy_(new_bias)


def fold_bn_into_following(bn: nn.Module, layer: nn.Module) -> None:
    """Fold eval BatchNorm ``bn`` into the 1x1 conv / Linear ``layer`` that reads its output
    (``bn`` must then be replaced by Identity). Raises ValueError for a kernel larger than 1."""
    if any(k != 1 for k in getattr(layer, "kernel_size", (1,))):
        raise ValueError("a BatchNorm folds into a following convolution only when its kernel is 1x1 "
                         "(zero padding would see the shift)")
    _fold_input_affine(layer, *_bn_affine(bn))


def fold_bn_into_preceding(conv: nn.Module, bn: nn.Module) -> None:
    """Fold eval BatchNorm ``bn`` into the convolution ``conv`` whose output it normalizes."""
    scale, shift = _bn_affine(bn)
    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.ndim - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    new_bias = scale * bias + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def fold_ln_affine_into_following(ln: nn.LayerNorm, layer: nn.Linear) -> nn.LayerNorm:
    """Fold ``ln``'s elementwise affine into the Linear ``layer`` that reads it; returns the
    LayerNorm without affine (same eps) to put in its place."""
    _fold_input_affine(layer, ln.weight, ln.bias)
    return nn.LayerNorm(ln.normalized_shape, eps=ln.eps, elementwise_affine=False)


@torch.no_grad()
def fuse_for_inference(model: nn.Module) -> nn.Module:
    """A fused copy of ``model`` (``model`` itself is unchanged) for eval-mode inference: same
    inputs and outputs, fewer passes over the activations (see the module docstring for what
    folds). The copy is in eval mode and keeps ``pretrained_cfg``, ``model_name`` and
    ``weights_info``; training it would be wrong (the folded norms no longer update).
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if type(module) is UniFormerBlock and module.block_type == "local":
            fold_bn_into_following(module.norm1, module.mhra.value)
            fold_bn_into_following(module.norm2, module.ffn.fc1)
            module.norm1, module.norm2 = nn.Identity(), nn.Identity()
        elif type(module) is UniFormerBlock and isinstance(module.norm1, nn.LayerNorm) \
                and module.norm1.elementwise_affine:
            if module.mhra.window_size is None:  # windows zero-pad the normalized tokens: keep that affine
                module.norm1 = fold_ln_affine_into_following(module.norm1, module.mhra.qkv)
            module.norm2 = fold_ln_affine_into_following(module.norm2, module.ffn.fc1)
        elif isinstance(module, ConvStem):
            layers = list(module.proj)
            for i, layer in enumerate(layers[:-1]):
                if (isinstance(layer, nn.modules.conv._ConvNd)
                        and isinstance(layers[i + 1], nn.modules.batchnorm._BatchNorm)):
                    fold_bn_into_preceding(layer, layers[i + 1])
                    module.proj[i + 1] = nn.Identity()
    fused.fused_for_inference = True
    return fused
