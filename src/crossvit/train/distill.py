"""Knowledge distillation as DeiT trains (Touvron et al. 2021), the recipe the CrossViT paper follows.

    loss = (1 - alpha) * label_loss(student, y) + alpha * distillation term

soft: ``tau^2 * KL(softmax(teacher / tau) || softmax(student / tau))`` (Hinton et al.; batch mean).
hard: cross-entropy of the student against the teacher's argmax (DeiT's "hard distillation").

CrossViT has no distillation token, so the term applies to the model's output (the mean of its two heads). The
teacher sees the same augmented (and mixed) batch as the student, in inference mode and without gradients, resized
to the input size it was trained at when that is known and differs (a ResNet teacher trained on CIFAR upsampled to
64 px, a 32-px student): a CNN takes any size, but one fed half its training resolution predicts worse.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.tensor_loader import resize_batch
from ..runtime.source import load_model

log = logging.getLogger("crossvit")


class DistillationLoss(nn.Module):
    takes_inputs = True  # the engine calls criterion(x, out, y)

    def __init__(
        self, base: nn.Module, teacher: nn.Module, kind: str, alpha: float, tau: float,
        teacher_size: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if kind not in ("soft", "hard"):
            raise ValueError(f"--distill must be soft or hard, got {kind!r}")
        self.base, self.teacher, self.kind, self.alpha, self.tau = base, teacher, kind, alpha, tau
        self.teacher_size = tuple(teacher_size) if teacher_size is not None else None
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def distill_term(self, student: Tensor, teacher: Tensor) -> Tensor:
        """student, teacher: (B, C) logits -> scalar."""
        if self.kind == "hard":
            return F.cross_entropy(student, teacher.argmax(dim=1))
        t = self.tau
        log_p_s = F.log_softmax(student.float() / t, dim=1)
        log_p_t = F.log_softmax(teacher.float() / t, dim=1)
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)

    def teacher_input(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, *teacher_size), as the memory loader resizes."""
        if self.teacher_size is None or tuple(x.shape[-2:]) == self.teacher_size:
            return x
        return resize_batch(x.float(), self.teacher_size)

    def forward(self, x: Tensor, out: Tensor, y: Tensor) -> Tensor:
        label_loss = self.base(out, y)
        if self.alpha == 0:
            return label_loss
        self.teacher.eval()
        with torch.no_grad():
            t_out = self.teacher(self.teacher_input(x))  # (B, C)
        return (1 - self.alpha) * label_loss + self.alpha * self.distill_term(out, t_out)


def load_teacher(source: str, num_classes: int) -> nn.Module:
    """``timm/NAME=WEIGHTS`` (a timm architecture and its weights file) or any model source of ours."""
    if source.startswith("timm/"):
        name, sep, weights = source[len("timm/") :].partition("=")
        if not sep or not weights:
            raise ValueError(f"--teacher {source}: a timm teacher is timm/NAME=WEIGHTS_FILE (trained weights)")
        if not Path(weights).is_file():
            raise FileNotFoundError(f"--teacher {source}: no such weights file {weights}")
        import timm  # the teacher may be any timm architecture; timm is a dependency already

        return timm.create_model(name, num_classes=num_classes, checkpoint_path=weights)
    return load_model(source)


def build_distillation(cfg: Any, criterion: nn.Module, num_classes: int, device: torch.device) -> nn.Module:
    """``criterion`` as it is without ``--teacher``; else wrapped in a :class:`DistillationLoss`."""
    if not cfg.teacher:
        return criterion
    teacher = load_teacher(cfg.teacher, num_classes).to(device).eval()
    if device.type == "cpu":  # the batches come channels-last; oneDNN's convolutions want the weights so too
        teacher = teacher.to(memory_format=torch.channels_last)
    t_classes = getattr(teacher, "num_classes", num_classes)
    if t_classes != num_classes:
        raise ValueError(f"--teacher {cfg.teacher}: predicts {t_classes} classes, the data has {num_classes}")
    size = teacher_input_size(teacher)
    log.info(
        "distilling from %s (%s, alpha %.2f, tau %.1f, %.2fM params, input %s)",
        cfg.teacher,
        cfg.distill,
        cfg.distill_alpha,
        cfg.distill_tau,
        sum(p.numel() for p in teacher.parameters()) / 1e6,
        "x".join(map(str, size)) if size else "the student's batch as it is",
    )
    return DistillationLoss(criterion, teacher, cfg.distill, cfg.distill_alpha, cfg.distill_tau, size)


def teacher_input_size(teacher: nn.Module) -> tuple[int, int] | None:
    """The (H, W) a teacher of ours (a CrossViT or a timm model trained here) was built for; None for a bare timm
    architecture with a weights file, whose training size is not recorded."""
    size = getattr(getattr(teacher, "cfg", None), "img_size", None)
    return (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
