"""Fine-tuning UniFormer: one CPU to many GPUs (torchrun), exact resume, export, Hub upload.

    from uniformer.train import TrainConfig, fit
    result = fit(TrainConfig(model="uniformer_xxs_digits", data="digits", epochs=30, output_dir="runs/digits",
                             export=True))
    print(result.metrics["val_top1"], result.export_dir)

Command line: ``python -m uniformer train --data digits --epochs 30 --output runs/digits --export``
(``torchrun --nproc_per_node N -m uniformer train ...`` for N processes). Modules: ``config``
(TrainConfig), ``data`` (datasets, seeded samplers), ``model`` (starting points, freezing,
gradient checkpointing), ``engine`` (fit / evaluate), ``distributed`` (torchrun, SyncBN),
``checkpoint`` (resume, export, push_to_hub), ``digits`` (drawn digits -> the digits model).
"""
from .checkpoint import export_model, load_checkpoint, push_to_hub
from .config import TrainConfig
from .data import (DatasetError, DigitsDataset, ImageFolderDataset, MovingDigitsDataset, VideoListDataset,
                   MOTIONS)
from .engine import FitResult, TrainState, evaluate, fit
from .model import FrameAveragingClassifier, build_model, enable_grad_checkpointing, freeze

__all__ = ["TrainConfig", "fit", "evaluate", "FitResult", "TrainState", "build_model", "freeze",
           "enable_grad_checkpointing", "FrameAveragingClassifier", "export_model", "load_checkpoint", "push_to_hub",
           "DatasetError", "DigitsDataset", "MovingDigitsDataset", "ImageFolderDataset", "VideoListDataset", "MOTIONS"]
