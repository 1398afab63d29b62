"""Registered video classifiers: every official UniFormer video checkpoint (paper §4.2, §6.2,
Tables 3, 4, 12; the official model zoo in ``video_classification/README.md``).

The 2-D blocks serve 3-D unchanged (``spatial_dims=3``): stem 3x4x4 stride 2x4x4 (halves T),
1x2x2 downsampling, DPE 3x3x3, local MHRA 5x5x5, joint space-time global MHRA over all T x H x W
tokens; the light XXS / XS models use their 3-D conv stem and hourglass blocks (§5).

Names are the official file stems: the Hub files (``Sense-X/uniformer_video``,
``Andy1621/uniformer_light``, ``Andy1621/uniformer``) and the experiment folders of the
Google-Drive-only checkpoints (``uniformer_s16x4_k400`` -> ``uniformer_small_k400_16x4``). Each
entry fixes what a checkpoint does not store (docs/official.md §3.2, §3.3, §6):

* frames T and resolution (``input_size`` = (3, T, S, S)), sampling kind and rate: 'dense'
  (Kinetics S/B: T frames, one every ``sampling_rate``) or 'segment' (Something-Something, light
  models: T segments over the whole video);
* test views (``test_clips`` x ``test_crops``: Kinetics 4 clips x 1 crop, Something-Something 1
  clip x 3 crops, light 1 x 1) and the test short side (Kinetics 256 = 224 / crop_pct with 1 crop,
  Something-Something and light: the crop size);
* normalization: mean 0.45, std 0.225 on all channels (the slowfast training statistics; the
  official Hub demo's ImageNet statistics are not what the models were trained with);
* the label set in the official head order (Kinetics orders are not alphabetical).

Video parameters do not depend on T, so a spec named for one T (``video_b32``) fixes the keys of
every checkpoint of that architecture and class count.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..data.video import KINETICS_MEAN, KINETICS_STD
from ..registry import ModelEntry, PretrainedCfg, register_model
from .light import UniFormerLight, light_config
from .uniformer import UniFormer, UniFormerConfig, checkpoint_filter_fn

__all__ = ["VideoPretrainedCfg", "video_config", "light_video_config"]

TASK = "video-classification"


@dataclass(frozen=True)
class VideoPretrainedCfg(PretrainedCfg):
    """:class:`~uniformer.registry.PretrainedCfg` of a video checkpoint, plus how clips are taken.

    sampling: 'dense' (T frames at ``sampling_rate`` frames apart; Kinetics) or 'segment' (one
    frame per segment of the whole video; Something-Something and light models); sampling_rate:
    frames between two sampled frames (dense only); test_clips / test_crops: the official test
    views (the paper writes T x crops x clips, e.g. 16x1x4); top1: the paper's / model zoo's
    top-1 (%) at those views on the entry's dataset; pretrain: the dataset the Kinetics
    pre-training came from, for the Something-Something models.
    """

    sampling: str = "dense"
    sampling_rate: int | None = None
    test_clips: int = 1
    test_crops: int = 1
    pretrain: str | None = None

    @property
    def num_frames(self) -> int:
        """T, frames per clip (input_size = (3, T, S, S))."""
        return self.input_size[1]

    @property
    def crop_size(self) -> int:
        """S, the crop side in pixels."""
        return self.input_size[-1]

    def test_short_side(self, crops: int) -> int:
        """Short side (px) frames are resized to before ``crops`` crops are taken: with one crop
        floor(S / crop_pct) (Kinetics: 256), with several crops S (slowfast's test transform)."""
        return self.crop_size if crops > 1 else int(self.crop_size / self.crop_pct + 1e-6)

    def describe_sampling(self) -> str:
        """One line, e.g. 'dense: 16 frames, 1 every 8 frames (a clip spans 128 frames)'."""
        t = self.num_frames
        if self.sampling == "dense":
            return (f"dense: {t} frames, 1 every {self.sampling_rate} frames "
                    f"(a clip spans {t * self.sampling_rate} frames)")
        return f"uniform (segment): the video cut into {t} equal segments, 1 frame from each"


def video_config(size: str, num_classes: int) -> UniFormerConfig:
    """UniFormer-S / B for video (Table 1 depths, head_dim 64, docs/official.md §3.2)."""
    depths = {"small": (3, 4, 8, 3), "base": (5, 8, 20, 7)}[size]
    return UniFormerConfig(depths=depths, head_dim=64, spatial_dims=3, num_classes=num_classes)


def light_video_config(size: str, layer_scale: bool) -> UniFormerConfig:
    """Light XXS / XS for video (400 classes); ``layer_scale``: the ``Uniformer_light_ls`` class of
    the 4/8-frame XXS checkpoints (gammas init 0.1 in every block, docs/official.md §3.3)."""
    cfg = light_config(size).replace(spatial_dims=3, num_classes=400)
    return cfg.replace(layer_scale_init=0.1, layer_scale_local=True) if layer_scale else cfg


_DRIVE = ("The official file is on Google Drive / Baidu Cloud (Sense-X/UniFormer, "
          "video_classification/README.md, experiment {exp}).")
_UNRELEASED = ("No checkpoint of this configuration was released (the official model zoo lists only its "
               "training log, video_classification/README.md); train it or use another model.")
_LABELS = {"k400": ("kinetics-400", 400), "k600": ("kinetics-600", 600),
           "sthv1": ("something-something-v1", 174), "sthv2": ("something-something-v2", 174)}
_DATASET = {"k400": "Kinetics-400", "k600": "Kinetics-600", "sthv1": "Something-Something V1",
            "sthv2": "Something-Something V2"}

# Kinetics (dense sampling, tested 1 crop x 4 clips, short side 256): name -> (size, dataset, T,
# stride, reference variant, Hub file or None (Drive) or "unreleased", model zoo top-1)
_KINETICS = {
    "uniformer_small_k400_8x8": ("small", "k400", 8, 8, "video_s8", None, 78.4),
    "uniformer_small_k400_16x4": ("small", "k400", 16, 4, "video_s16", None, 80.8),
    "uniformer_small_k400_16x8": ("small", "k400", 16, 8, "video_s16",
                                  "Sense-X/uniformer_video:uniformer_small_k400_16x8.pth", 80.8),
    "uniformer_small_k400_32x4": ("small", "k400", 32, 4, "video_s32", "unreleased", 82.0),
    "uniformer_base_k400_8x8": ("base", "k400", 8, 8, "video_b8", None, 79.8),
    "uniformer_base_k400_16x4": ("base", "k400", 16, 4, "video_b16",
                                 "Andy1621/uniformer:uniformer_base_k400_16x4.pth", 82.0),
    "uniformer_base_k400_16x8": ("base", "k400", 16, 8, "video_b16", None, 81.7),
    "uniformer_base_k400_32x4": ("base", "k400", 32, 4, "video_b32",
                                 "Sense-X/uniformer_video:uniformer_base_k400_32x4.pth", 82.9),
    "uniformer_small_k600_16x4": ("small", "k600", 16, 4, "video_s16_k600", None, 82.8),
    "uniformer_small_k600_16x8": ("small", "k600", 16, 8, "video_s16_k600",
                                  "Sense-X/uniformer_video:uniformer_small_k600_16x8.pth", 82.7),
    "uniformer_base_k600_16x4": ("base", "k600", 16, 4, "video_b32_k600", None, 84.0),
    "uniformer_base_k600_16x8": ("base", "k600", 16, 8, "video_b32_k600", None, 83.4),
    "uniformer_base_k600_32x4": ("base", "k600", 32, 4, "video_b32_k600",
                                 "Sense-X/uniformer_video:uniformer_base_k600_32x4.pth", 84.5),
}

# Something-Something (segment sampling, tested 3 crops x 1 clip at short side 224; fine-tuned
# from a Kinetics model): top-1 of the model zoo per (size, T, dataset, pre-training).
_STH_TOP1 = {
    ("small", 16, "sthv1", "k400"): 57.2, ("small", 16, "sthv1", "k600"): 57.6,
    ("small", 32, "sthv1", "k400"): 58.8, ("small", 32, "sthv1", "k600"): 59.9,
    ("base", 16, "sthv1", "k400"): 59.1, ("base", 16, "sthv1", "k600"): 58.8,
    ("base", 32, "sthv1", "k400"): 60.9, ("base", 32, "sthv1", "k600"): 61.0,
    ("small", 16, "sthv2", "k400"): 67.7, ("small", 16, "sthv2", "k600"): 69.4,
    ("small", 32, "sthv2", "k400"): 69.0, ("small", 32, "sthv2", "k600"): 70.4,
    ("base", 16, "sthv2", "k400"): 70.4, ("base", 16, "sthv2", "k600"): 70.2,
    ("base", 32, "sthv2", "k400"): 71.1, ("base", 32, "sthv2", "k600"): 71.2,
}
_STH_HUB = {"uniformer_small_sthv1_16_prek600", "uniformer_small_sthv2_16_prek600",
            "uniformer_base_sthv1_32_prek600", "uniformer_base_sthv2_32_prek600"}

# Light-weight (segment sampling, 1 clip x 1 crop at the training resolution; Table 12):
# name -> (size, T, resolution, layer scale, reference variant, Hub file, top-1)
_LIGHT = {
    "uniformer_xxs4_128_k400": ("xxs", 4, 128, True, "light_video_xxs4", None, 63.2),
    "uniformer_xxs4_160_k400": ("xxs", 4, 160, True, "light_video_xxs4", None, 65.8),
    "uniformer_xxs8_128_k400": ("xxs", 8, 128, True, "light_video_xxs4", None, 68.3),
    "uniformer_xxs8_160_k400": ("xxs", 8, 160, False, "light_video_xxs", None, 71.4),
    "uniformer_xxs16_128_k400": ("xxs", 16, 128, False, "light_video_xxs", None, 73.3),
    "uniformer_xxs16_160_k400": ("xxs", 16, 160, False, "light_video_xxs",
                                 "Andy1621/uniformer_light:uniformer_xxs16_160_k400.pth", 75.1),
    "uniformer_xxs32_160_k400": ("xxs", 32, 160, False, "light_video_xxs32", None, 77.9),
    "uniformer_xs32_192_k400": ("xs", 32, 192, False, "light_video_xs", None, 78.6),
}
_LIGHT_DRIVE = ("The official file is on Google Drive / Baidu Cloud (Sense-X/UniFormer, "
                "video_classification/README.md, light-weight models, experiment exp_light/{exp}).")


def _where(hub: str | None, exp: str) -> dict:
    if hub == "unreleased":
        return {"hub": None, "download_hint": _UNRELEASED}
    return {"hub": hub, "download_hint": None if hub else _DRIVE.format(exp=exp)}


#: Google Drive file id of each official checkpoint: the links of the official model-zoo READMEs
#: (Sense-X/UniFormer), downloaded by :mod:`uniformer.downloads`.
_DRIVE_IDS = {
    "uniformer_base_k400_16x4": "15ipzFaZdTt-aHv7jcr_h_vgYD2X7D6AD",
    "uniformer_base_k400_16x8": "1VoZcpFZbk9lEyRQ7gqRgT4CsnVt9g7uk",
    "uniformer_base_k400_32x4": "1gHxx8cr1H0CNvngj1kB9ArgcPfJtqjCV",
    "uniformer_base_k400_8x8": "1hBxGU-QE8hGRBjSNCymJ7Au06LhluvTv",
    "uniformer_base_k600_16x4": "1nBQCBCsCflhZ4OGUoGB3pAkc_GDau7vd",
    "uniformer_base_k600_16x8": "1aidHdSd-h65-_EUkfNOdMMw0ZB8G5maY",
    "uniformer_base_k600_32x4": "1-DwdVf8w8lYj-iFpU40pfEpog9VE5PQB",
    "uniformer_base_sthv1_16_prek400": "1uMq4W5lf17vOHUmccNjYLeTMqaWHSh6v",
    "uniformer_base_sthv1_16_prek600": "1xpiL8zEDWYHFR55gOsbQiI41YEjTD89J",
    "uniformer_base_sthv1_32_prek400": "18A3FuUUbdQ8ehMQ0D78qTTtm6YmIVWaO",
    "uniformer_base_sthv1_32_prek600": "1xE1aJYAYFOlXOkpiIbJFHu_jSrr8reKm",
    "uniformer_base_sthv2_16_prek400": "1s78JBpnykyJ7pYEGRDK8BZL9seIRIUlC",
    "uniformer_base_sthv2_16_prek600": "16nCBGWzMM8n8Vr_EY0UmvgzLG0S_QYef",
    "uniformer_base_sthv2_32_prek400": "1-rpMARXnyvyj6YUJkIvVqtna86egpjoS",
    "uniformer_base_sthv2_32_prek600": "1-lkRB3546l_ECuObN_IrHws1C9a-qKPr",
    "uniformer_small_k400_16x4": "1-jGZIIuTM5IYIpqkNTojhGhfMc7Gu9Kt",
    "uniformer_small_k400_16x8": "174muWZJcZHieABDZMKiJ0tNeFLoEkJLx",
    "uniformer_small_k400_8x8": "1-kitVTkWErHXI_x-sLItvK9-sOmb53j6",
    "uniformer_small_k600_16x4": "1-dqzjm5RZVspWHQLRD4S1vo4_6jyVltb",
    "uniformer_small_k600_16x8": "1-c835NJjg_015WxLBQF-1cPdQsyWMWfY",
    "uniformer_small_sthv1_16_prek400": "1-bdFsmXt2Ztf43lrVgmqS8_VYJ8tub6J",
    "uniformer_small_sthv1_16_prek600": "1-YbYGjM15MDtQnrmCeZ9H2ybNdYTFkgO",
    "uniformer_small_sthv1_32_prek400": "1-Y5ADssqM2C8o_1jix48fQM788mVGWQ3",
    "uniformer_small_sthv1_32_prek600": "1-XEgaGqXGp1EGzFl63ctApnvU54X27WP",
    "uniformer_small_sthv2_16_prek400": "1-Wq22024HB7tT8kPX6eSMn2GUNMI-_gY",
    "uniformer_small_sthv2_16_prek600": "1-V1mQp4fIIYhaXUWCgZXkJ0H6ne0Z8rz",
    "uniformer_small_sthv2_32_prek400": "1-5Q5S-NRmHFkIBygaRYpJLT7aI9cpmky",
    "uniformer_small_sthv2_32_prek600": "1-1K5R3Ed4t8d_DZnJ62xysIt1dBNmx96",
    "uniformer_xs32_192_k400": "1DtdX-keSB-RkH23KqtQH36IMOUmol1kw",
    "uniformer_xxs16_128_k400": "1DngSOmw0rStnYZlaCnz1xII6CU2d2R_j",
    "uniformer_xxs16_160_k400": "1DxqrNHb4h1ZKnEFaqbkKJAXQsyIFeD7b",
    "uniformer_xxs32_160_k400": "1EIVXRYn5UIkLaJGDpTBxTcyog_dKbcZe",
    "uniformer_xxs4_128_k400": "1EFBxDS2m4mpk_sYejnPuGSDRH_1ELDhx",
    "uniformer_xxs4_160_k400": "1DtTFT7FZ_kUjxqXAYyWhfXSr_EIHQi8a",
    "uniformer_xxs8_128_k400": "1E9VwV-XJQCmo9nBhxLxa9DdphZiIg38z",
    "uniformer_xxs8_160_k400": "1Dxq82X8mBsfVOzij0HSeb1g4sdez71FM",
}

def _register() -> None:
    """Register every video classifier (called once, on import)."""
    mean_std = dict(mean=KINETICS_MEAN, std=KINETICS_STD, interpolation="bilinear")
    for name, (size, data, t, stride, variant, hub, top1) in _KINETICS.items():
        label_set, classes = _LABELS[data]
        exp = f"uniformer_{size[0]}{t}x{stride}_{data}"
        register_model(ModelEntry(
            name=name, build=UniFormer, config=video_config(size, classes),
            pretrained=VideoPretrainedCfg(
                **_where(hub, exp), drive_id=_DRIVE_IDS.get(name), input_size=(3, t, 224, 224), crop_pct=224 / 256,
                label_set=label_set,
                num_classes=classes, top1=top1, reference_variant=variant, sampling="dense", sampling_rate=stride,
                test_clips=4, test_crops=1, **mean_std),
            filter_fn=checkpoint_filter_fn, task=TASK,
            description=f"UniFormer-{size[0].upper()} video, {_DATASET[data]}, {t} frames x stride {stride} (dense)"))

    for (size, t, data, pre), top1 in _STH_TOP1.items():
        name = f"uniformer_{size}_{data}_{t}_pre{pre}"
        label_set, classes = _LABELS[data]
        hub = f"Sense-X/uniformer_video:{name}.pth" if name in _STH_HUB else None
        register_model(ModelEntry(
            name=name, build=UniFormer, config=video_config(size, classes),
            pretrained=VideoPretrainedCfg(
                **_where(hub, f"uniformer_{size[0]}{t}_{data}_pre{pre}"), drive_id=_DRIVE_IDS[name],
                input_size=(3, t, 224, 224), crop_pct=1.0,
                label_set=label_set, num_classes=classes, top1=top1,
                reference_variant=f"video_{size[0]}{16 if size == 'small' else 32}_ssv2", sampling="segment",
                test_clips=1, test_crops=3, pretrain=_DATASET[pre], **mean_std),
            filter_fn=checkpoint_filter_fn, task=TASK,
            description=f"UniFormer-{size[0].upper()} video, {_DATASET[data]}, {t} frames (uniform), "
                        f"{_DATASET[pre]} pre-training"))

    for name, (size, t, res, ls, variant, hub, top1) in _LIGHT.items():
        register_model(ModelEntry(
            name=name, build=UniFormerLight, config=light_video_config(size, ls),
            pretrained=VideoPretrainedCfg(
                hub=hub, drive_id=_DRIVE_IDS[name], download_hint=None if hub else _LIGHT_DRIVE.format(exp=name),
                input_size=(3, t, res, res),
                crop_pct=1.0, label_set="kinetics-400", num_classes=400, top1=top1, reference_variant=variant,
                sampling="segment", test_clips=1, test_crops=1, **mean_std),
            filter_fn=checkpoint_filter_fn, task=TASK,
            description=f"UniFormer-{size.upper()} light-weight video, Kinetics-400, {t} frames at {res}px (uniform)"))


_register()
