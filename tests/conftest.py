"""Shared fixtures: deterministic seeds and the tiny CrossViTs the tests build and run in milliseconds.

``TINY_ARGS`` is a 48-px CrossViT with the released shape of things (patch 12 / 16, the L branch fed a 224/240
resize); ``TINY_TRAIN_ARGS`` a 16-px one written as a recipe's ``model_args`` (lists, as YAML gives them).
Tests import them (``from conftest import TINY_ARGS``) and vary them with ``CrossViTConfig.replace``.
"""

from __future__ import annotations

import pytest
import torch

from crossvit import CrossViTConfig
from crossvit.runtime.cpu import cpu_supports_bf16

# Without AVX512-BF16 / AMX (e.g. AMD Zen 3) bf16 matrix products are emulated, ~30x slower than fp32: tests still
# take every bf16 path there, on smaller batches.
NATIVE_BF16 = cpu_supports_bf16()

TINY_ARGS: dict = dict(
    img_size=(48, 48), img_scale=(1.0, 32 / 48), patch_size=(12, 16), embed_dim=(24, 48), num_heads=(2, 2),
    mlp_ratio=(2.0, 2.0), num_encoders=2, small_depth=1, large_depth=2,
)  # fmt: skip

TINY_TRAIN_ARGS: dict = {
    "img_size": [16, 16],
    "img_scale": [1.0, 1.0],
    "patch_size": [4, 8],
    "embed_dim": [16, 32],
    "num_heads": [2, 2],
    "mlp_ratio": [1.0, 1.0],
    "num_encoders": 1,
    "small_depth": 1,
    "large_depth": 1,
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg() -> CrossViTConfig:
    """The ``TINY_ARGS`` CrossViT with 7 classes."""
    return CrossViTConfig(**TINY_ARGS, num_classes=7)
