"""A model's own preprocessing: timm's data-config keys read off its ``pretrained_cfg``, and the eval transform.

Below the model and the release format, so prediction can use it without importing either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import CenterCrop, Normalize, Resize, ToTensor

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


@dataclass(frozen=True)
class SplitTransform:
    """An eval transform cut where the PIL work ends. ``per_image``: the resize and crop, giving an (H, W, C) uint8
    array; ``batch``: a list of those -> the (B, C, H, W) fp32 batch, scaled to [0, 1] and normalized in one pass.

    The batch half does the arithmetic of ToTensor and Normalize on the stacked images (uint8 -> fp32, / 255,
    - mean, / std), so its output equals the per-image transform's, bit for bit, at a fraction of the per-image
    cost: a server or a predict loop pays a few tensor operations per batch instead of per image.
    """

    per_image: Callable[[Image.Image], np.ndarray]
    mean: Tensor  # (C,)
    std: Tensor  # (C,)

    def batch(self, images: list[np.ndarray]) -> Tensor:
        x = torch.from_numpy(np.stack(images))  # (B, H, W, C) uint8
        x = x.permute(0, 3, 1, 2).to(torch.float32).div(255)  # (B, C, H, W)
        return x.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))


def split_transform(tf: Any) -> SplitTransform | None:
    """``tf`` as a :class:`SplitTransform` when it is a Compose of PIL steps then ToTensor then Normalize (what
    :func:`eval_transform` builds); None for any other transform, which callers then run per image."""
    steps = list(getattr(tf, "transforms", None) or [])
    if len(steps) < 2 or not isinstance(steps[-2], ToTensor) or not isinstance(steps[-1], Normalize):
        return None
    if not all(isinstance(t, (Resize, CenterCrop)) for t in steps[:-2]):  # other steps may want tensors
        return None
    norm: Normalize = steps[-1]
    pil_steps = steps[:-2]

    def per_image(img: Image.Image) -> np.ndarray:
        for t in pil_steps:
            img = t(img)
        if not isinstance(img, Image.Image) or img.mode != "RGB":
            raise ValueError(f"expected an RGB PIL image after the resize and crop, got {type(img).__name__}")
        return np.asarray(img, dtype=np.uint8)  # (H, W, 3)

    mean = torch.as_tensor(norm.mean, dtype=torch.float32)
    std = torch.as_tensor(norm.std, dtype=torch.float32)
    return SplitTransform(per_image, mean, std)
