"""Shared fixtures: deterministic seeds and a small CrossViT config that builds and runs in milliseconds."""

from __future__ import annotations

import pytest
import torch

from crossvit import CrossViTConfig


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg() -> CrossViTConfig:
    """A 48-px CrossViT with the released shape of things: patch 12 / 16, the L branch fed a 224/240 resize."""
    return CrossViTConfig(
        img_size=(48, 48),
        img_scale=(1.0, 32 / 48),
        patch_size=(12, 16),
        embed_dim=(24, 48),
        num_heads=(2, 2),
        mlp_ratio=(2.0, 2.0),
        num_encoders=2,
        small_depth=1,
        large_depth=2,
        num_classes=7,
    )
