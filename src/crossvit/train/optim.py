"""Optimizer with weight-decay groups, and the warm-up + cosine schedule stepped every iteration."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layer_decay import layer_decay_groups


def param_groups(model: nn.Module, weight_decay: float, decay_tokens: bool = True) -> list[dict]:
    """Biases and norm weights (1-D) never decay. Position embeddings and CLS tokens decay when ``decay_tokens``.

    The released weights were trained with them decayed: the official code's ``no_weight_decay`` names
    (``pos_embed``) never matched its parameter names (``pos_embed.0``). The paper/timm behaviour excludes them.
    """
    skip = set(getattr(model, "no_weight_decay", lambda: set())()) if not decay_tokens else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in skip:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def build_optimizer(model: nn.Module, cfg, lr: float, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW or SGD over the weight-decay (and layer-decay) groups; ``fused``: AdamW's single-kernel update."""
    if getattr(cfg, "layer_decay", None) is not None:
        groups = layer_decay_groups(model, cfg.weight_decay, cfg.layer_decay, cfg.wd_tokens == "decay")
    else:
        groups = param_groups(model, cfg.weight_decay, cfg.wd_tokens == "decay")
    if cfg.opt == "adamw":
        return torch.optim.AdamW(groups, lr=lr, eps=cfg.opt_eps, betas=(0.9, 0.999), fused=fused or None)
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"--opt must be adamw or sgd, got {cfg.opt!r}")


class WarmupCosine:
    """lr(step): linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_steps``, then cosine down to ``min_lr``.

    A pure function of the step, so a resumed run needs only the step counter to continue the schedule exactly.
    """

    def __init__(self, optimizer, lr: float, total_steps: int, warmup_steps: int, warmup_lr: float, min_lr: float):
        self.optimizer = optimizer
        self.lr, self.total, self.warmup = lr, max(1, total_steps), warmup_steps
        self.warmup_steps_asked = warmup_steps
        self.warmup_lr, self.min_lr = warmup_lr, min(min_lr, lr)

    def set_total(self, total_steps: int) -> None:
        """Move the end of the schedule (``--time-budget`` re-planning); warm-up is capped at a fifth of it."""
        self.total = max(1, total_steps)
        self.warmup = min(self.warmup_steps_asked, self.total // 5)

    def done(self, step: int) -> bool:
        return step >= self.total

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.warmup_lr + (self.lr - self.warmup_lr) * step / self.warmup
        t = (step - self.warmup) / max(1, self.total - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))

    def step(self, step: int) -> float:
        lr = self.lr_at(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)  # layer decay scales each group's share of the schedule
        return lr
