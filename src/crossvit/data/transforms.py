"""Train / eval transforms, built by ``timm.data.create_transform`` from a :class:`TrainConfig`.

Train: RandomResizedCrop, flip, RandAugment (``--aa``), normalise, random erasing (``--reprob``).
Eval: resize to ``size / crop_pct``, centre crop ``size``, normalise (paper and released code: crop_pct 0.875).
"""

from __future__ import annotations

from typing import Any

from ..models.registry import IMAGENET_MEAN, IMAGENET_STD


def norm_stats(cfg: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(cfg.mean or IMAGENET_MEAN), tuple(cfg.std or IMAGENET_STD)


def train_transform(cfg: Any, img_size: int):
    from timm.data import create_transform  # on first use: importing timm loads all of its models (~1 s)

    mean, std = norm_stats(cfg)
    return create_transform(
        input_size=img_size,
        is_training=True,
        scale=tuple(cfg.scale),
        hflip=cfg.hflip,
        color_jitter=cfg.color_jitter,
        auto_augment=cfg.aa,
        interpolation=cfg.train_interpolation,
        mean=mean,
        std=std,
        re_prob=cfg.reprob,
        re_mode=cfg.remode,
        re_count=cfg.recount,
    )


def eval_transform(cfg: Any, img_size: int, crop_pct: float | None = None):
    from timm.data import create_transform  # on first use: importing timm loads all of its models (~1 s)

    mean, std = norm_stats(cfg)
    return create_transform(
        input_size=img_size,
        is_training=False,
        interpolation=cfg.eval_interpolation,
        mean=mean,
        std=std,
        crop_pct=cfg.crop_pct if crop_pct is None else crop_pct,
    )
