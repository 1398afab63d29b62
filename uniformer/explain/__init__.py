"""Looking inside UniFormer: captured attention, token geometry, affinities, CAMs (library, no UI).

Start with :func:`analyze` (one forward, kept as data); every view is a function of its result.
Every 2-D UniFormer is covered, windowed / hybrid dense backbones and the light (hourglass) models
included: see :mod:`uniformer.explain.capture` for how their attention is put on the token grid.
Grad-CAM (:mod:`uniformer.explain.cam`) imports ``pytorch_grad_cam`` only when called.
"""
from .affinity import (LocalAffinity, ReceptiveField, effective_receptive_field, local_affinity,
                       theoretical_receptive_field)
from .analysis import GLOBAL, HOURGLASS, LOCAL, NOT_CAPTURED, WINDOW, Analysis, LayerInfo, analyze, class_names_of
from .attention import QueryMap, query_map, query_maps, query_token
from .cam import CAM_METHODS, CamResult, class_activation_map, shared_weights_twin
from .capture import (AttentionCapture, ShrunkAttention, capture_attention, global_mhra_modules,
                      window_attention)
from .compare import LocalVsGlobal, comparison_layers, local_vs_global
from .distance import AttentionDistance, mean_attention_distance, token_distances
from .features import pca_rgb, stage_pca
from .figures import READABLE_RC, distance_figure, heatmap_figure, kernels_figure, query_figure
from .geometry import InputGeometry, OutsideCropError, input_geometry
from .overlay import (FIELD_COLOUR, QUERY_COLOUR, REACH_COLOUR, colorbar_image, colorize, contact_sheet, display_size,
                      draw_boxes, overlay, query_boxes, query_overlay, receptive_field_overlay, rgb_picture, to_image)
from .provenance import UNTRAINED_MARK, load_or_fallback, mark_figure, missing_checkpoint_note, weights_title
from .point import PointView, display_to_image, explain_point, image_to_display, point_report
from .rollout import HEAD_FUSIONS, Rollout, attention_rollout, downsample_matrix, rollout_matrix
from .views import AnalysisPictures, PointPictures, analysis_pictures, first_global_layer, layer_caption, point_pictures

__all__ = [
    "AttentionCapture", "ShrunkAttention", "capture_attention", "global_mhra_modules", "window_attention",
    "InputGeometry", "OutsideCropError", "input_geometry",
    "LOCAL", "GLOBAL", "NOT_CAPTURED", "WINDOW", "HOURGLASS", "LayerInfo", "Analysis", "analyze", "class_names_of",
    "QueryMap", "query_token", "query_map", "query_maps",
    "LocalAffinity", "local_affinity", "ReceptiveField", "theoretical_receptive_field", "effective_receptive_field",
    "LocalVsGlobal", "comparison_layers", "local_vs_global",
    "AttentionDistance", "token_distances", "mean_attention_distance",
    "HEAD_FUSIONS", "Rollout", "rollout_matrix", "downsample_matrix", "attention_rollout",
    "pca_rgb", "stage_pca",
    "PointView", "explain_point", "point_report", "display_to_image", "image_to_display",
    "CAM_METHODS", "CamResult", "shared_weights_twin", "class_activation_map",
    "display_size", "to_image", "colorize", "colorbar_image", "overlay", "draw_boxes", "contact_sheet", "QUERY_COLOUR",
    "REACH_COLOUR",
    "FIELD_COLOUR", "query_boxes", "query_overlay", "receptive_field_overlay", "rgb_picture",
    "READABLE_RC", "heatmap_figure", "query_figure", "kernels_figure", "distance_figure",
    "UNTRAINED_MARK", "weights_title", "mark_figure", "missing_checkpoint_note", "load_or_fallback",
    "AnalysisPictures", "analysis_pictures", "PointPictures", "point_pictures", "layer_caption", "first_global_layer",
]
