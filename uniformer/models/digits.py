"""The project-trained digits model: a small light-weight UniFormer for scikit-learn's 8x8
handwritten digits, trained with ``uniformer.train`` and shipped in the package
(``uniformer/weights/uniformer_xxs_digits/``), so ``create_model('uniformer_xxs_digits',
pretrained=True)`` works offline (``weights_info.source == 'project'``).

Architecture: the XXS design (§5: conv stem, local stages 1-2, hourglass token shrinking in
stages 3-4, mlp ratio 3) at a smaller scale: depths (1, 2, 3, 1), dims (24, 48, 96, 192),
head_dim 24; input 64x64 (the 8x8 digit upsampled bilinearly), 10 classes '0'..'9'. How it was
trained and its held-out accuracy are in the model card next to the weights.
"""
from __future__ import annotations

from ..registry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, PretrainedCfg, register_model
from .light import UniFormerLight, UniFormerLightConfig
from .uniformer import checkpoint_filter_fn

__all__ = ["DIGITS_MODEL", "digits_config"]

DIGITS_MODEL = "uniformer_xxs_digits"


def digits_config() -> UniFormerLightConfig:
    """The digits model's architecture (see the module docstring)."""
    ratios = ((1.0, 0.5, 0.5), (0.5,))
    return UniFormerLightConfig(depths=(1, 2, 3, 1), dims=(24, 48, 96, 192), head_dim=24, mlp_ratio=3.0,
                                stem="conv", keep_ratios=ratios, trade_offs=ratios, num_classes=10)


register_model(ModelEntry(
    name=DIGITS_MODEL, build=UniFormerLight, config=digits_config(),
    pretrained=PretrainedCfg(input_size=(3, 64, 64), crop_pct=1.0, interpolation="bilinear", mean=IMAGENET_MEAN,
                             std=IMAGENET_STD, label_set="digits", num_classes=10,
                             labels=tuple(str(i) for i in range(10)), package_file=f"weights/{DIGITS_MODEL}"),
    filter_fn=checkpoint_filter_fn, task="image-classification",
    description="light UniFormer for 8x8 handwritten digits (scikit-learn), trained by this project"))
