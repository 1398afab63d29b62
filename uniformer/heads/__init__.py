"""Dense-prediction heads and necks with the official (OpenMMLab) module names: UperNet and FCN
(``upernet``), Semantic FPN (``fpn``), top-down heatmap pose head (``pose``)."""
from .fpn import FPN, FPNHead
from .layers import ConvModule, resize
from .pose import TopdownHeatmapSimpleHead
from .upernet import PPM, FCNHead, UPerHead

__all__ = ["ConvModule", "resize", "PPM", "UPerHead", "FCNHead", "FPN", "FPNHead", "TopdownHeatmapSimpleHead"]
