"""What the CPU is and which of its units decide speed: one reader of /proc/cpuinfo for logs, benchmarks, precision."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# the flags that decide the fast path: bf16 matrix units (AMX, AVX512-BF16) and int8 dot products (VNNI)
SPEED_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx512_fp16")


def cpuinfo() -> dict[str, str]:
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


def cpu_flags() -> list[str]:
    """Which of :data:`SPEED_FLAGS` this CPU has."""
    flags = cpuinfo().get("flags", "").split()
    return [f for f in SPEED_FLAGS if f in flags]


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16 or AMX-BF16), where bf16 autocast is fast."""
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            flags = cpuinfo().get("flags", "")
            return not flags or any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    except (AttributeError, RuntimeError):
        pass
    return False


def cpu_description() -> str:
    """'AMD EPYC (family 26 model 2; avx512_bf16 avx512_vnni), 2 logical CPUs': what decides speed, for logs."""
    info = cpuinfo()
    if not info:
        return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} logical CPUs"
    flags = info.get("flags", "").split()
    fast = [f for f in ("amx_bf16", "avx512_bf16", "avx512_vnni") if f in flags] or ["no native bf16"]
    # the model name alone can be as vague as "AMD EPYC"; family 25 is Zen 3/4, 26 Zen 5, Intel 6/143 Sapphire Rapids
    return (f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')} model "
            f"{info.get('model', '?')}; {' '.join(fast)}), {os.cpu_count()} logical CPUs")  # fmt: skip
