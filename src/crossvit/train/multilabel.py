"""Multi-label training pieces: the BCE criterion, and validation by mAP and micro / macro F1 at a threshold.

mAP is the mean over classes (with at least one positive) of average precision: the mean, over the positive
images of a class, of the precision among the images scored at least as high (ties count against the positive,
as sklearn's ``average_precision_score``). F1 counts a label as predicted when its sigmoid exceeds the threshold;
macro F1 averages over the classes that occur in the truth or the predictions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn

from .precision import autocast


def bce_criterion(smoothing: float, multi_label: bool, mixup_on: bool) -> nn.Module:
    """timm's BinaryCrossEntropy. Mixup smooths the targets it mixes, so the loss smooths only without it; dense
    multi-hot targets move towards 0.5, one-hot (single-label) ones as timm's --bce-loss does."""
    from timm.loss import BinaryCrossEntropy  # loaded on first use (slow import)

    return BinaryCrossEntropy(smoothing=0.0 if mixup_on else smoothing, smooth_dense=multi_label)


def average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """Per-class AP of (N, C) scores against (N, C) 0/1 targets; NaN for a class without positives."""
    order = scores.argsort(dim=0, descending=True, stable=True)  # (N, C)
    t = targets.gather(0, order).double()  # targets sorted by score, per class
    s = scores.gather(0, order)
    tp = t.cumsum(0)  # (N, C)
    # ties: every image with the same score is counted at the rank of the last of them
    n = scores.shape[0]
    idx = torch.arange(n).unsqueeze(1).expand_as(s)
    last = torch.where(torch.cat([s[1:] != s[:-1], torch.ones(1, s.shape[1], dtype=torch.bool)], 0), idx, n)
    last = last.flip(0).cummin(0).values.flip(0)  # index of the last image of each run of equal scores
    tp_at = tp.gather(0, last)
    precision = tp_at / (last + 1).double()
    pos = t.sum(0)
    ap = (precision * t).sum(0) / pos
    return torch.where(pos > 0, ap, torch.full_like(ap, float("nan")))


def f1_scores(probs: Tensor, targets: Tensor, threshold: float) -> tuple[float, float]:
    """(micro F1, macro F1) in %, a label predicted when its probability is above ``threshold``."""
    pred = probs > threshold
    truth = targets > 0.5
    tp = (pred & truth).sum(0).double()
    fp = (pred & ~truth).sum(0).double()
    fn = (~pred & truth).sum(0).double()
    micro = 2 * tp.sum() / max(1.0, (2 * tp.sum() + fp.sum() + fn.sum()).item())
    seen = (tp + fp + fn) > 0
    per = 2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])
    macro = per.mean() if seen.any() else torch.tensor(0.0)
    return 100.0 * float(micro), 100.0 * float(macro)


def _gather(t: Tensor) -> Tensor:
    if not (tdist.is_available() and tdist.is_initialized()):
        return t
    parts: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(parts, t.cpu())  # shards differ in size; mAP needs every image's score
    return torch.cat(parts)


@torch.no_grad()
def evaluate_multilabel(model: nn.Module, loader, device: torch.device, amp: str, threshold: float) -> dict[str, Any]:
    """{images, loss (mean BCE per label), mAP, f1_micro, f1_macro, per_class_ap} over all ranks."""
    model.eval()
    logits, targets = [], []
    for x, y in loader:
        with autocast(amp, device):
            out = model(x.to(device))  # (B, C)
        logits.append(out.float().cpu())
        targets.append(y.float())
    z = _gather(torch.cat(logits)) if logits else torch.zeros(0, 0)
    y = _gather(torch.cat(targets)) if targets else torch.zeros(0, 0)
    probs = z.sigmoid()
    ap = average_precision(probs, y)
    micro, macro = f1_scores(probs, y, threshold)
    return {
        "images": int(z.shape[0]),
        "loss": float(nn.functional.binary_cross_entropy_with_logits(z, y)) if z.numel() else float("nan"),
        "mAP": 100.0 * float(ap.nanmean()) if ap.numel() else float("nan"),
        "f1_micro": micro,
        "f1_macro": macro,
        "threshold": threshold,
        "per_class_ap": [None if v != v else 100.0 * float(v) for v in ap.tolist()],
    }


def metrics_text(metrics: dict[str, Any]) -> str:
    """The validation part of an epoch log line, single- or multi-label."""
    if not metrics:
        return ""
    if "mAP" in metrics:
        return (
            f" val_loss {metrics['loss']:.4f} mAP {metrics['mAP']:.2f} F1 micro {metrics['f1_micro']:.2f} "
            f"macro {metrics['f1_macro']:.2f} @{metrics['threshold']:g}"
        )
    return f" val_loss {metrics['loss']:.4f} top1 {metrics['top1']:.2f} top5 {metrics['top5']:.2f}"
