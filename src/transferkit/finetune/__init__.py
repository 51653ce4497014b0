"""Fine-tuning engine pieces: freezing, layer-wise learning rates, schedule, early stopping,
checkpoints."""

from transferkit.finetune.augment import AUGMENTS, default_augment, training_transform
from transferkit.finetune.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from transferkit.finetune.early_stopping import EarlyStopping
from transferkit.finetune.freezing import (
    freeze,
    set_frozen_bn_eval,
    set_unfrozen_groups,
    train_mode,
    unfreeze,
)
from transferkit.finetune.lr_finder import LRFindResult, lr_find
from transferkit.finetune.param_groups import discriminative_param_groups, unfreeze_next_group
from transferkit.finetune.schedule import lr_factor, warmup_cosine_scheduler

__all__ = [
    "AUGMENTS",
    "EarlyStopping",
    "LRFindResult",
    "LoadedCheckpoint",
    "default_augment",
    "discriminative_param_groups",
    "freeze",
    "load_checkpoint",
    "lr_factor",
    "lr_find",
    "save_checkpoint",
    "set_frozen_bn_eval",
    "set_unfrozen_groups",
    "train_mode",
    "training_transform",
    "unfreeze",
    "unfreeze_next_group",
    "warmup_cosine_scheduler",
]
