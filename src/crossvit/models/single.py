"""The single-branch baseline of Table 2: CrossViT's L branch alone, i.e. a DeiT/ViT of the same width and depth.

    cfg = crossvit.get_entry("crossvit_15_240").cfg.replace(single_branch=True, fusion="none")
    model = crossvit.create_model(cfg)      # K * M blocks of the L branch, one CLS token, one head

:class:`CrossViT` builds it from the config (``cfg.branches``). The L branch still sees the image resized by
``img_scale[1]``, so both models are fed identical inputs.
"""

from __future__ import annotations

from .config import CrossViTConfig
from .model import CrossViT
from .timm_model import TimmClassifier, TimmConfig


def build_model(cfg: CrossViTConfig | TimmConfig) -> CrossViT | TimmClassifier:
    """The model a config describes: a two-branch CrossViT, the single-branch baseline, or a timm architecture."""
    return TimmClassifier(cfg) if isinstance(cfg, TimmConfig) else CrossViT(cfg)
