"""Gradient accumulation: N micro-batches of B images give the gradient of one batch of N x B.

Each micro-batch's mean loss is divided by N before its backward, so the summed gradients are those of the mean
loss over all N x B images (the micro-batches are equal-sized: the loaders drop the last partial batch). Under DDP
only the last backward all-reduces; the others run in ``no_sync`` and only accumulate locally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from .precision import autocast


def take(it: Iterator, n: int) -> list:
    """Up to ``n`` items of ``it`` (fewer when it runs out)."""
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


def sync_context(model: nn.Module, last: bool):
    """DDP's ``no_sync`` except on the last micro-step, where the summed gradients are all-reduced once."""
    if not last and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return nullcontext()


def forward_backward(
    model: nn.Module,
    micro: list,
    criterion: nn.Module,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: str,
    mixup: Any | None = None,
) -> tuple[float, int]:
    """Forward + backward of every (x, y) in ``micro``; returns (mean loss over the images, images)."""
    n_micro = len(micro)
    total, n = 0.0, 0
    for j, (x, y) in enumerate(micro):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, C, H, W), (B,) or (B, K)
        if mixup is not None:
            x, y = mixup(x, y)  # y: (B, num_classes) soft targets
        with sync_context(model, j == n_micro - 1):
            with autocast(amp, device):
                out = model(x)  # (B, num_classes)
                # distillation (takes_inputs) also needs the batch, for the teacher
                loss = criterion(x, out, y) if getattr(criterion, "takes_inputs", False) else criterion(out, y)
            scaler.scale(loss / n_micro).backward()
        total += loss.item()
        n += x.shape[0]
    return total / max(1, n_micro), n
