"""Mixed precision: bf16 autocast on CPUs with bf16 units, fp16 + GradScaler on CUDA, fp32 on request."""

from __future__ import annotations

import contextlib

import torch

from ..runtime.cpu import cpu_supports_bf16


def resolve_amp(amp: str, device: torch.device) -> str:
    """'auto' -> 'fp16' on CUDA, 'bf16' on CPUs with bf16 units, else 'fp32'. Explicit choices are checked."""
    if amp == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16: float16 training needs CUDA; on CPU use --amp bf16 or --amp fp32")
    if amp not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"--amp must be auto, bf16, fp16 or fp32, got {amp!r}")
    return amp


def autocast(amp: str, device: torch.device):
    if amp == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))


__all__ = ["autocast", "grad_scaler", "resolve_amp"]
