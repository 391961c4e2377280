"""A model's own preprocessing: timm's data-config keys read off its ``pretrained_cfg``, and the eval transform.

Below the model and the release format, so prediction can use it without importing either.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg


def data_config(model: nn.Module) -> dict[str, Any]:
    """Preprocessing of a model: input_size, crop_pct, interpolation, mean, std (timm's data-config keys)."""
    pc = getattr(model, "pretrained_cfg", None)
    h, w = model.cfg.img_size
    if isinstance(pc, dict):  # set by hand: read as the builders would have set it
        pc = PretrainedCfg.from_dict(pc)
    base = pc.to_dict() if pc is not None else {}
    return {
        "input_size": (model.cfg.in_chans, h, w),
        "crop_pct": float(base.get("crop_pct", 0.875)),
        "crop_mode": base.get("crop_mode", "center"),
        "interpolation": base.get("interpolation", "bicubic"),
        "mean": tuple(base.get("mean", IMAGENET_MEAN)),
        "std": tuple(base.get("std", IMAGENET_STD)),
    }


def eval_transform(model: nn.Module, crop_pct: float | None = None, img_size: int | None = None):
    """The model's own evaluation transform (resize, centre crop, normalize) built by ``timm.data``."""
    from timm.data import create_transform  # on first use: importing timm loads all of its models (~1 s)

    dc = data_config(model)
    size = dc["input_size"][1:] if img_size is None else (img_size, img_size)
    return create_transform(
        input_size=size,
        is_training=False,
        interpolation=dc["interpolation"],
        mean=dc["mean"],
        std=dc["std"],
        crop_pct=dc["crop_pct"] if crop_pct is None else crop_pct,
        crop_mode=dc["crop_mode"],
    )
