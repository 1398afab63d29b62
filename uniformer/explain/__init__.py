"""Looking inside UniFormer: captured attention, token geometry, affinities, CAMs (library, no UI)."""
from .capture import AttentionCapture, capture_attention, global_mhra_modules
from .geometry import InputGeometry, input_geometry

__all__ = ["AttentionCapture", "capture_attention", "global_mhra_modules", "InputGeometry", "input_geometry"]
