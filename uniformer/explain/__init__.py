"""Looking inside UniFormer: captured attention, token maps, affinities, CAMs (library, no UI)."""
from .capture import AttentionCapture, capture_attention, global_mhra_modules

__all__ = ["AttentionCapture", "capture_attention", "global_mhra_modules"]
