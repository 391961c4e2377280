"""The fast CPU training step: channels-last memory layout and the fused AdamW kernel.

Both change how the same numbers are laid out or looped over, not what is computed: the gradients equal the plain
step's (tests/test_budget_fast.py), so the choice is one of speed. Measured with ``crossvit benchmark --train``.
"""

from __future__ import annotations

import torch
from torch import nn


def use_fast_step(choice: str, device: torch.device) -> bool:
    if choice not in ("auto", "fast", "plain"):
        raise ValueError(f"--fast-step must be auto, fast or plain, got {choice!r}")
    return choice == "fast" or (choice == "auto" and device.type == "cpu")


def to_fast_layout(model: nn.Module) -> nn.Module:
    """Convolution weights in channels-last order (oneDNN's native layout on CPU: no reorder per call)."""
    return model.to(memory_format=torch.channels_last)
