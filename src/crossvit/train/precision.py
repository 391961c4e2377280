"""Mixed precision: bf16 autocast on CPUs with bf16 units, fp16 + GradScaler on CUDA, fp32 on request."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for ln in text.splitlines():
        if not ln.strip():  # the blank line after the first processor's block
            break
        key, _, value = ln.partition(":")
        out[key.strip()] = value.strip()
    return out


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16 or AMX-BF16), where bf16 autocast is fast."""
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            flags = _cpuinfo().get("flags", "")
            return not flags or any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    except (AttributeError, RuntimeError):
        pass
    return False


def cpu_description() -> str:
    """'AMD EPYC (family 26 model 2; avx512_bf16 avx512_vnni), 2 logical CPUs': what decides speed, for logs."""
    info = _cpuinfo()
    if not info:
        return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} logical CPUs"
    flags = info.get("flags", "").split()
    fast = [f for f in ("amx_bf16", "avx512_bf16", "avx512_vnni") if f in flags] or ["no native bf16"]
    # the model name alone can be as vague as "AMD EPYC"; family 25 is Zen 3/4, 26 Zen 5, Intel 6/143 Sapphire Rapids
    return (f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')} model "
            f"{info.get('model', '?')}; {' '.join(fast)}), {os.cpu_count()} logical CPUs")  # fmt: skip


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
