"""Registered ImageNet-1k UniFormer classifiers: every official image checkpoint (paper Table 2).

Names are the official checkpoint / experiment names: the Hub files' stems
(``uniformer_small_in1k``, ...) and the official experiment folders for the Google-Drive-only
ones (``uniformer_small_tl_224``, ...). Each fixes head_dim (the same official factory name means
head_dim 64 in the plain models but 32 in the token-labeling ones, docs/official.md §3.1) and the
evaluation preprocessing (§6): DeiT eval (resize 256/224, bicubic) for the plain models, timm 0.4.5
crop_pct 0.9 for token labeling.
"""
from __future__ import annotations

from ..registry import ModelEntry, PretrainedCfg, register_model
from .uniformer import UniFormer, UniFormerConfig, checkpoint_filter_fn

_DRIVE_IN1K = "The official file is on Google Drive / Baidu Cloud (Sense-X/UniFormer, image_classification/README.md)."
_DRIVE_TL = ("The official file is on Google Drive / Baidu Cloud "
             "(Sense-X/UniFormer, image_classification/token_labeling/README.md).")

_SMALL = dict(depths=(3, 4, 8, 3))
_SMALL_PLUS = dict(depths=(3, 5, 9, 3), stem="conv", downsample="conv")
_BASE = dict(depths=(5, 8, 20, 7))
_LARGE_LS = dict(depths=(5, 10, 24, 7), dims=(128, 192, 448, 640), layer_scale_init=1e-6, layer_scale_local=True)

# name: (architecture, head_dim, extra config, reference variant, hub file, paper top-1, description)
_IN1K = {
    "uniformer_small_in1k": (_SMALL, 64, {}, "image_s", "Sense-X/uniformer_image:uniformer_small_in1k.pth", 82.9,
                             "UniFormer-S"),
    "uniformer_small_plus_in1k": (_SMALL_PLUS, 32, {}, "image_s_plus",
                                  "Sense-X/uniformer_image:uniformer_small_plus_in1k.pth", 83.4,
                                  "UniFormer-S\u2020 (overlapping conv stem)"),
    "uniformer_small_plus_dim64_in1k": (_SMALL_PLUS, 64, {}, "image_s_plus_dim64", None, None,
                                        "UniFormer-S\u2020, head_dim 64"),
    "uniformer_base_in1k": (_BASE, 64, {}, "image_b", "Sense-X/uniformer_image:uniformer_base_in1k.pth", 83.9,
                            "UniFormer-B"),
    "uniformer_base_ls_in1k": (_BASE, 64, {"layer_scale_init": 1e-6}, "image_b_ls", None, None,
                               "UniFormer-B with layer scale in the global blocks"),
}
_TL = {
    "uniformer_small_tl_224": (_SMALL, 32, "tl_s", 224, 83.4, "UniFormer-S, token labeling"),
    "uniformer_small_dim64_tl_224": (_SMALL, 64, "tl_s_dim64", 224, None, "UniFormer-S, token labeling, head_dim 64"),
    "uniformer_small_plus_tl_224": (_SMALL_PLUS, 32, "tl_s_plus", 224, 83.9, "UniFormer-S\u2020, token labeling"),
    "uniformer_small_plus_dim64_tl_224": (_SMALL_PLUS, 64, "tl_s_plus_dim64", 224, None,
                                          "UniFormer-S\u2020, token labeling, head_dim 64"),
    "uniformer_base_tl_224": (_BASE, 32, "tl_b", 224, 85.1, "UniFormer-B, token labeling"),
    "uniformer_base_dim64_tl_224": (_BASE, 64, "tl_b_dim64", 224, None, "UniFormer-B, token labeling, head_dim 64"),
    "uniformer_large_ls_tl_224": (_LARGE_LS, 64, "tl_l", 224, 85.6, "UniFormer-L (layer scale), token labeling"),
    "uniformer_small_tl_384": (_SMALL, 32, "tl_s_384", 384, 84.6, "UniFormer-S, token labeling, 384 fine-tune"),
    "uniformer_small_plus_tl_384": (_SMALL_PLUS, 32, "tl_s_plus_384", 384, 84.9,
                                    "UniFormer-S\u2020, token labeling, 384 fine-tune"),
    "uniformer_base_tl_384": (_BASE, 32, "tl_b_384", 384, 86.0, "UniFormer-B, token labeling, 384 fine-tune"),
    "uniformer_large_ls_tl_384": (_LARGE_LS, 64, "tl_l_384", 384, 86.3,
                                  "UniFormer-L (layer scale), token labeling, 384 fine-tune"),
}


#: Google Drive file id of each official checkpoint: the links of the official model-zoo READMEs
#: (Sense-X/UniFormer), downloaded by :mod:`uniformer.downloads`.
_DRIVE_IDS = {
    "uniformer_base_dim64_tl_224": "17MneG9CnZG6zBvXYUr4WUXoTYc4rjJj5",
    "uniformer_base_in1k": "1-wT39QazTGELxgrQIu6J12D3qcla3hui",
    "uniformer_base_ls_in1k": "10FnwzMVgGL8bPO3EMZ7oG4vDvqnPoBK5",
    "uniformer_base_tl_224": "16nsTjawiYZuoCHBRarr58zA7vCFcmQmL",
    "uniformer_base_tl_384": "16kZlIarIwf9ldkCdHVKTQfFmDgfkucQ7",
    "uniformer_large_ls_tl_224": "173e2qaJhOwbuC_DbNQSH47Oo_04mSfDj",
    "uniformer_large_ls_tl_384": "174rcA6rNzYVG9Ya9ik-NwTGoxW1M79ez",
    "uniformer_small_dim64_tl_224": "17NC5qqAWCT2gI_jY_cJnFTOqRQTSwsoz",
    "uniformer_small_in1k": "1-uepH3Q3BhTmWU6HK-sGAGQC_MpfIiPD",
    "uniformer_small_plus_dim64_in1k": "178ipRvMBKeAP_Fzy6fEr2HQkIQWdgEY6",
    "uniformer_small_plus_dim64_tl_224": "17OfoDWt2_nA0BYN0OuLPpG8mHJDTluQQ",
    "uniformer_small_plus_in1k": "10IN5ULcjz0Ld_lDokkTGOSmRFXLzUkEs",
    "uniformer_small_plus_tl_224": "16rgtEVEeX3jVTQaiLsojBQP5sRaj_2aZ",
    "uniformer_small_plus_tl_384": "16wJT87vTc43Dt1q2sXrxZRUuEdrNdFdk",
    "uniformer_small_tl_224": "16wjfeyqQFZ2x9W91EXf0Py1bfv4Fydfr",
    "uniformer_small_tl_384": "16p4CXzuXC5J4_SJK67dsvnc8gTKmtKN1",
}

def _register() -> None:
    """Register every ImageNet-1k classifier (called once, on import)."""
    for name, (arch, hd, extra, variant, hub, top1, desc) in _IN1K.items():
        register_model(ModelEntry(
            name=name, build=UniFormer, config=UniFormerConfig(**arch, head_dim=hd, **extra),
            pretrained=PretrainedCfg(hub=hub, drive_id=_DRIVE_IDS[name], download_hint=None if hub else _DRIVE_IN1K,
                                     crop_pct=224 / 256, top1=top1, reference_variant=variant),
            filter_fn=checkpoint_filter_fn, description=desc))

    for name, (arch, hd, variant, size, top1, desc) in _TL.items():
        register_model(ModelEntry(
            name=name, build=UniFormer, config=UniFormerConfig(**arch, head_dim=hd, aux_head=True),
            pretrained=PretrainedCfg(drive_id=_DRIVE_IDS[name], download_hint=_DRIVE_TL, input_size=(3, size, size),
                                     crop_pct=0.9, top1=top1, reference_variant=variant),
            filter_fn=checkpoint_filter_fn, description=desc))


_register()
