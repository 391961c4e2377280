"""``create_model``: a named (or given) architecture, optionally with weights, at any size and class count."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..models.config import CrossViTConfig
from ..models.features import CrossViTFeatures
from ..models.model import CrossViT
from ..models.registry import PretrainedCfg, get_entry, get_pretrained_cfg
from ..models.single import build_model
from .weights import download_pretrained, load_into, read_state_dict

log = logging.getLogger("crossvit")


def create_model(
    name: str | CrossViTConfig,
    pretrained: bool = False,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    drop_path_rate: float | None = None,
    checkpoint: str | Path | None = None,
    use_ema: bool = False,
    features_only: bool = False,
    out_indices: int | tuple[int, ...] | list[int] | None = None,
    pretrained_cfg: PretrainedCfg | None = None,
    **overrides: Any,
) -> CrossViT | CrossViTFeatures:
    """Build a CrossViT by registered name (or from a config) and load weights into it.

    Args:
        name: a registered name (``crossvit_15_240``), an official alias (``crossvit_15_224``), optionally with a
            weights tag (``crossvit_15_240.in1k``), or a :class:`CrossViTConfig`.
        pretrained: load the released ImageNet weights (downloaded from the hub or the official release).
        num_classes: classes of the new model; heads of another size in the weights are dropped, not loaded.
        img_size: input resolution (int or (h, w)); position embeddings are resized bicubically on load.
        drop_path_rate: stochastic depth rate.
        checkpoint: a local weights file (ours, timm's or the official layout; .pth or .safetensors).
        use_ema: take the EMA weights when the checkpoint holds them.
        features_only: return a backbone (:class:`~crossvit.models.features.CrossViTFeatures`) giving NCHW maps of both
            branches after the encoders ``out_indices`` picks (default all; an int n: the last n), weights loaded
            as for the classifier.
        out_indices: encoder indices for ``features_only`` (negative ones count from the end).
        pretrained_cfg: the preprocessing the model carries (default: its registry entry's).
        overrides: any other :class:`CrossViTConfig` field.
    """
    if isinstance(name, CrossViTConfig):
        cfg, pcfg = name, None
    else:
        cfg, pcfg = get_entry(name).cfg, get_pretrained_cfg(name)
    cfg = cfg.with_overrides(num_classes=num_classes, img_size=img_size, drop_path_rate=drop_path_rate, **overrides)
    model = build_model(cfg)
    released = None
    if pretrained and checkpoint is None:
        if pcfg is None:
            raise ValueError(f"no released weights for {name}; pass checkpoint=PATH to load your own")
        checkpoint = download_pretrained(pcfg.hf_hub_id, pcfg.url)
        released = pcfg
    if checkpoint is not None:
        load_into(model, read_state_dict(checkpoint, use_ema=use_ema), source=str(checkpoint))
    model.pretrained_cfg = pretrained_cfg or pcfg
    model.released_weights = released  # what a model card says of these weights (ImageNet-1k, timm's top-1)
    if features_only:
        return CrossViTFeatures(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices is an option of features_only=True")
    return model
