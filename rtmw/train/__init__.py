"""Training and fine-tuning with mmpose's RTMW recipe (SimCC targets, KL loss, AdamW)."""

from rtmw.train.augment import NO_AUGMENT, AugmentConfig, augment_person
from rtmw.train.loop import TrainConfig, TrainResult, learning_rate, train
from rtmw.train.plot import plot_learning_curve
from rtmw.train.targets import kl_simcc_loss, simcc_targets

__all__ = [
    "NO_AUGMENT",
    "AugmentConfig",
    "TrainConfig",
    "TrainResult",
    "augment_person",
    "kl_simcc_loss",
    "learning_rate",
    "plot_learning_curve",
    "simcc_targets",
    "train",
]
