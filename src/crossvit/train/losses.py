"""The loss of a run and the batch mixing (mixup / cutmix) whose soft targets it takes."""

from __future__ import annotations

from torch import nn

from .config import TrainConfig
from .multilabel import bce_criterion


def build_criterion(cfg: TrainConfig) -> nn.Module:
    """The training loss: soft-target CE under mixup, label smoothing, or BCE for multi-label runs."""
    # loaded on first use (slow import)
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.resolved_loss == "bce":
        return bce_criterion(cfg.smoothing, cfg.multi_label, cfg.mixup_active and cfg.mixup_prob > 0)
    if cfg.mixup_active and cfg.mixup_prob > 0:
        return SoftTargetCrossEntropy()  # smoothing is applied inside Mixup to the soft targets
    if cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return nn.CrossEntropyLoss()


def build_mixup(cfg: TrainConfig, num_classes: int):
    """timm's Mixup / CutMix for the batches, or None when the recipe has none."""
    if not (cfg.mixup_active and cfg.mixup_prob > 0):
        return None
    from timm.data import Mixup  # loaded on first use (slow import)

    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        prob=cfg.mixup_prob,
        switch_prob=cfg.mixup_switch_prob,
        mode=cfg.mixup_mode,
        label_smoothing=cfg.smoothing,
        num_classes=num_classes,
        multi_label=cfg.multi_label,  # mixes multi-hot targets as they are instead of one-hot encoding labels
    )
