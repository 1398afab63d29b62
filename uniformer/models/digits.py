"""The project-trained models: small light-weight UniFormers trained with ``uniformer.train`` and
shipped in the package (``uniformer/weights/<name>/``), so ``create_model(name, pretrained=True)``
works offline (``weights_info.source == 'project'``). How each was trained and its held-out
accuracy are in the model card (README.md) and config.json next to its weights.

``uniformer_xxs_digits``: scikit-learn's 8x8 handwritten digits. The XXS design (§5: conv stem,
local stages 1-2, hourglass token shrinking in stages 3-4, mlp ratio 3) at a smaller scale: depths
(1, 2, 3, 1), dims (24, 48, 96, 192), head_dim 24; input 64x64 (the 8x8 digit upsampled
bilinearly), 10 classes '0'..'9'.

``uniformer_xxs_moving_digits``: the same design in 3-D (the light video models' layout, §5 and
§4.2: 3-D conv stem halving time, 5x5x5 local MHRA, joint space-time hourglass blocks) for the
"moving digits" clips of :class:`uniformer.data.moving_digits.MovingDigitsDataset`: 8 frames of 32x32, the label
is the motion (``MOVING_DIGITS_CLASSES``), which only the order of the frames reveals. Depths
(1, 1, 2, 1), dims (16, 32, 64, 128), head_dim 16; segment sampling, 1 clip x 1 crop, the video
models' normalization (mean 0.45, std 0.225).
"""
from __future__ import annotations

from ..data.video import KINETICS_MEAN, KINETICS_STD
from ..registry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, PretrainedCfg, register_model
from .light import UniFormerLight, UniFormerLightConfig
from .uniformer import checkpoint_filter_fn
from .video import VideoPretrainedCfg

__all__ = ["DIGITS_MODEL", "digits_config", "MOVING_DIGITS_MODEL", "MOVING_DIGITS_CLASSES", "MOVING_DIGITS_FRAMES",
           "MOVING_DIGITS_SIZE", "moving_digits_config"]

DIGITS_MODEL = "uniformer_xxs_digits"
MOVING_DIGITS_MODEL = "uniformer_xxs_moving_digits"
#: The motion classes in label order (``uniformer.data.moving_digits.MOTIONS``; not imported: the model
#: registry does not depend on the training package).
MOVING_DIGITS_CLASSES = ("left", "right", "up", "down", "clockwise", "anticlockwise")
#: Frames per clip and canvas side (pixels) of the moving-digits model.
MOVING_DIGITS_FRAMES, MOVING_DIGITS_SIZE = 8, 32


def digits_config() -> UniFormerLightConfig:
    """The digits model's architecture (see the module docstring)."""
    ratios = ((1.0, 0.5, 0.5), (0.5,))
    return UniFormerLightConfig(depths=(1, 2, 3, 1), dims=(24, 48, 96, 192), head_dim=24, mlp_ratio=3.0,
                                stem="conv", keep_ratios=ratios, trade_offs=ratios, num_classes=10)


def moving_digits_config() -> UniFormerLightConfig:
    """The moving-digits video model's architecture (see the module docstring)."""
    ratios = ((1.0, 0.5), (0.5,))
    return UniFormerLightConfig(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), head_dim=16, mlp_ratio=3.0,
                                stem="conv", keep_ratios=ratios, trade_offs=ratios, spatial_dims=3,
                                num_classes=len(MOVING_DIGITS_CLASSES))


def _register() -> None:
    """Register the project-trained models (called once, on import)."""
    register_model(ModelEntry(
        name=DIGITS_MODEL, build=UniFormerLight, config=digits_config(),
        pretrained=PretrainedCfg(input_size=(3, 64, 64), crop_pct=1.0, interpolation="bilinear", mean=IMAGENET_MEAN,
                                 std=IMAGENET_STD, label_set="digits", num_classes=10,
                                 labels=tuple(str(i) for i in range(10)), package_file=f"weights/{DIGITS_MODEL}"),
        filter_fn=checkpoint_filter_fn, task="image-classification",
        description="light UniFormer for 8x8 handwritten digits (scikit-learn), trained by this project"))
    register_model(ModelEntry(
        name=MOVING_DIGITS_MODEL, build=UniFormerLight, config=moving_digits_config(),
        pretrained=VideoPretrainedCfg(
            input_size=(3, MOVING_DIGITS_FRAMES, MOVING_DIGITS_SIZE, MOVING_DIGITS_SIZE), crop_pct=1.0,
            interpolation="bilinear", mean=KINETICS_MEAN, std=KINETICS_STD, label_set="moving-digits",
            num_classes=len(MOVING_DIGITS_CLASSES), labels=MOVING_DIGITS_CLASSES,
            package_file=f"weights/{MOVING_DIGITS_MODEL}", sampling="segment", test_clips=1, test_crops=1),
        filter_fn=checkpoint_filter_fn, task="video-classification",
        description="light UniFormer video for moving digits (motion of a digit, 8x32x32), trained by this project"))


_register()
