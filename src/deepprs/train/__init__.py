"""deepprs.train: one trainer for every network (packed genotypes, checkpoints, early stopping)."""

from deepprs.train.trainer import (
    GenotypeBatcher,
    TrainResult,
    load_checkpoint,
    save_checkpoint,
    subset_variants,
    train_network,
    tune,
)

__all__ = [
    "GenotypeBatcher",
    "TrainResult",
    "load_checkpoint",
    "save_checkpoint",
    "subset_variants",
    "train_network",
    "tune",
]
