"""Dense-prediction tasks as pure functions with the official test-time pipelines (docs/dense.md §5):
semantic segmentation (:func:`segment_image`), top-down pose estimation (:func:`estimate_pose`),
object detection and instance segmentation (:func:`detect_objects`) and
their pictures (:mod:`uniformer.tasks.visualize`)."""
from .detection import DetectionResult, detect_objects, draw_detections
from .pose import PersonPose, PoseResult, estimate_pose
from .segmentation import ClassArea, SegmentationResult, segment_image, stage3_window_boxes

__all__ = ["segment_image", "SegmentationResult", "ClassArea", "stage3_window_boxes", "estimate_pose", "PoseResult",
           "PersonPose", "detect_objects", "DetectionResult", "draw_detections"]
