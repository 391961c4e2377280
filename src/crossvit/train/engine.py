"""One training epoch and one evaluation pass; metrics are summed over ranks so they are exact under DDP."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .accumulate import forward_backward, take
from .distributed import all_reduce_sum, all_reduce_tensor
from .precision import autocast
from .progress import StepProgress
from .state import TrainState
from .tta import check_tta, mean_logits, tta_views

log = logging.getLogger("crossvit")


@dataclass
class EpochResult:
    loss: float
    images: int
    img_s: float
    lr: float
    step: int
    skipped: int = 0  # steps whose loss was NaN/inf and that were skipped (--skip-nonfinite)


def train_one_epoch(state: TrainState, epoch: int) -> EpochResult:
    """``state.steps`` optimizer steps over ``state.train_dl``, each of ``cfg.grad_accum_steps`` micro-batches; the
    lr follows ``state.scheduler`` by global step. ``state.step`` and ``state.skipped`` advance.

    The epoch ends early when the schedule is done (``scheduler.done``: a ``--time-budget`` run's last steps).
    ``state.budget`` (a :class:`~crossvit.train.budget.TimeBudget`) is told of every step, to plan the step count. A
    criterion with ``takes_inputs`` (distillation) is called as ``criterion(x, out, y)``.

    A NaN/inf loss (on any rank: the ranks agree) skips that step while fewer than ``skip_nonfinite`` were skipped
    in the run, else raises FloatingPointError naming the epoch, step and learning rate.
    """
    cfg, model, optimizer, scheduler, scaler = state.cfg, state.net, state.optimizer, state.scheduler, state.scaler
    device, grad_accum_steps = state.dist.device, cfg.grad_accum_steps
    skip_nonfinite = cfg.skip_nonfinite - state.skipped
    model.train()
    progress = StepProgress(state.steps, epoch, cfg.epochs, state.dist.is_main, cfg.log_interval)
    loss_sum, n_seen, step, lr = 0.0, 0, state.step, scheduler.lr_at(state.step)
    skipped = 0
    it = iter(state.train_dl)
    for i in range(state.steps):
        if scheduler.done(step):
            break
        micro = take(it, grad_accum_steps)
        if len(micro) < grad_accum_steps:
            break
        lr = scheduler.step(step)
        optimizer.zero_grad(set_to_none=True)
        loss_val, n_img = forward_backward(model, micro, state.criterion, scaler, device, state.amp, state.mixup)
        bad = not math.isfinite(loss_val)
        if all_reduce_sum([float(bad)], device)[0] > 0:  # identity on one process; under DDP all ranks agree
            where = f"at epoch {epoch + 1} step {i + 1} (global step {step + 1}) with lr {lr:.4g}"
            if skipped < skip_nonfinite:
                skipped += 1
                step += 1
                optimizer.zero_grad(set_to_none=True)
                log.warning(
                    "loss is %s %s: step skipped (--skip-nonfinite allows %d more)",
                    loss_val,
                    where,
                    skip_nonfinite - skipped,
                )
                continue
            raise FloatingPointError(
                f"loss is {loss_val} {where}; stopped, the last good checkpoint is kept. Lower --lr, use --amp fp32 "
                f"or --clip-grad, or let --skip-nonfinite N skip such steps"
            )
        if cfg.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        if state.ema is not None:
            state.ema.update(model, step=step)
        if state.budget is not None:
            state.budget.on_step(step, scheduler)
        loss_sum += loss_val * n_img
        n_seen += n_img
        progress.update(i, loss_val, lr, n_img)
    img_s = progress.close()
    total_loss, total_n = all_reduce_sum([loss_sum, float(n_seen)], device)
    state.step, state.skipped = step, state.skipped + skipped
    return EpochResult(total_loss / max(1.0, total_n), int(total_n), img_s, lr, step, skipped)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    device: torch.device,
    amp: str = "fp32",
    num_classes: int | None = None,
    branches: bool = False,
    tta: str = "none",
) -> dict[str, Any]:
    """Top-1 / top-5 accuracy (%), mean cross-entropy, and (``num_classes``) the confusion matrix rows=truth.

    With ``branches`` also the accuracy of each branch head alone (Table 6: S-branch CLS only, L-branch CLS only).
    Counts are summed over ranks before the ratios are taken. ``model`` may also be a fast inference wrapper
    (``crossvit.runtime.fast``), called on fp32 images. ``tta`` names the views whose logits are averaged (``flip``:
    each image and its mirror; ``flip-shift``: also each moved by a pixel, six views; ``crossvit.train.tta``).
    """
    check_tta(tta)  # before the first batch
    model.eval()
    k = num_classes or 0
    conf = torch.zeros(k, k, dtype=torch.float64, device=device)
    sums = torch.zeros(5, dtype=torch.float64, device=device)  # n, loss, top1, top5, (unused)
    br = torch.zeros(2, dtype=torch.float64, device=device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        views = tta_views(x, tta)
        with autocast(amp, device):
            if branches:
                per_view = [model.forward_branch_logits(v) for v in views]  # views x 2 x (B, C)
                logits_b = [mean_logits(list(b)) for b in zip(*per_view)]  # 2 x (B, C)
                out = torch.stack(logits_b).mean(0)
            else:
                out = mean_logits([model(v) for v in views])  # (B, C)
        out = out.float()
        sums[0] += y.numel()
        sums[1] += nn.functional.cross_entropy(out, y, reduction="sum")
        topk = out.topk(min(5, out.shape[1]), dim=1).indices  # (B, 5)
        sums[2] += (topk[:, 0] == y).sum()
        sums[3] += (topk == y[:, None]).any(1).sum()
        if branches:
            for b, lb in enumerate(logits_b):
                br[b] += (lb.float().argmax(1) == y).sum()
        if k:
            conf += torch.bincount(y * k + topk[:, 0], minlength=k * k).reshape(k, k).to(conf)
    all_reduce_tensor(sums)
    all_reduce_tensor(conf)
    all_reduce_tensor(br)
    n = max(1.0, sums[0].item())
    res: dict[str, Any] = {
        "images": int(sums[0].item()),
        "loss": sums[1].item() / n,
        "top1": 100.0 * sums[2].item() / n,
        "top5": 100.0 * sums[3].item() / n,
    }
    if branches:
        res["top1_branch_s"] = 100.0 * br[0].item() / n
        res["top1_branch_l"] = 100.0 * br[1].item() / n
    if k:
        res["confusion"] = conf.long().cpu()
    return res
