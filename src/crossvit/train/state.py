"""What a run's epoch loop reads and advances, in one place: the model and what updates it, the data, the position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .budget import TimeBudget
from .config import TrainConfig
from .distributed import DistInfo
from .optim import WarmupCosine


@dataclass
class TrainState:
    """Everything :func:`~crossvit.train.engine.train_one_epoch` needs; ``step`` and ``skipped`` advance with it."""

    cfg: TrainConfig
    dist: DistInfo
    amp: str  # the resolved precision: fp32, bf16 or fp16
    model: nn.Module  # the bare model: what checkpoints, EMA and the release hold
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosine
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_dl: Any
    sampler: Any  # has set_epoch (a DistributedSampler-like, the shard data set, or the in-memory loader)
    steps: int  # optimizer steps per epoch
    val_dl: Any = None
    mixup: Any = None
    ema: Any = None  # timm's ModelEmaV3, or None
    net: nn.Module | None = None  # what the step runs: ``model``, DDP-wrapped and/or compiled (default ``model``)
    budget: TimeBudget | None = None
    step: int = 0  # optimizer steps taken, over the whole run
    skipped: int = 0  # NaN/inf steps skipped so far: --skip-nonfinite is a budget for the whole run
    start_epoch: int = 0
    best_top1: float = -1.0

    def __post_init__(self) -> None:
        if self.net is None:
            self.net = self.model

    @property
    def eval_model(self) -> nn.Module:
        """What is validated and released: the EMA weights when the run keeps them."""
        return self.ema.module if self.ema is not None else self.model
