"""Test-time augmentation: the views of a batch whose logits evaluation averages.

``flip``: each image and its mirror. ``flip-shift``: those two, each also moved by one pixel down-right and one
pixel up-left (six views; the pixels a move uncovers repeat the border). Training translates images by a few
pixels (``--crop-pad``), so the shifted views are ones the model has learnt to classify, and their average smooths
out the exact pixel grid of the single view.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

TTA_CHOICES = ("none", "flip", "flip-shift")
SHIFTS = ((1, 1), (-1, -1))  # (down, right) in pixels, beside the unshifted view
VIEWS = {"none": 1, "flip": 2, "flip-shift": 2 * (1 + len(SHIFTS))}  # forward passes per image


def shift(x: Tensor, dy: int, dx: int) -> Tensor:
    """``x`` (B, C, H, W) with its content moved ``dy`` rows down and ``dx`` columns right (|dy|, |dx| <= 1); the
    uncovered row and column repeat their neighbour."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H+2, W+2)
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def check_tta(tta: str) -> None:
    if tta not in TTA_CHOICES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_CHOICES)}, got {tta!r}")


def tta_views(x: Tensor, tta: str) -> list[Tensor]:
    """The views of ``x`` (B, C, H, W) for the mode ``tta``, the plain view first."""
    check_tta(tta)
    views = [x] if tta == "none" else [x, x.flip(-1)]
    if tta == "flip-shift":
        views = [s for v in views for s in (v, *(shift(v, dy, dx) for dy, dx in SHIFTS))]
    return views


def mean_logits(outs: list[Tensor]) -> Tensor:
    """The average of the views' logits, summed in view order (for two views exactly ``(a + b) / 2``)."""
    return sum(outs[1:], outs[0]) / len(outs)
