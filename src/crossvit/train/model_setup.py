"""The model a run trains: a registered name (+ ``model_args``), released weights, or a checkpoint to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import CrossViTConfig
from ..data.transforms import norm_stats
from ..factory import create_model
from ..hub import CONFIG_NAME, config_from_release, from_pretrained, load_config
from ..model import CrossViT
from ..registry import get_entry, get_pretrained_cfg


def _model_args(cfg: Any) -> dict[str, Any]:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in (cfg.model_args or {}).items()}


def is_release_dir(path: str | None) -> bool:
    return bool(path) and (Path(path) / CONFIG_NAME).is_file()


def arch_config(cfg: Any) -> CrossViTConfig:
    """Architecture implied by the options, before the class count is known (to size the data transforms)."""
    if is_release_dir(cfg.initial_checkpoint):
        p = Path(cfg.initial_checkpoint) / CONFIG_NAME
        base = config_from_release(load_config(p), str(p))
    else:
        base = get_entry(cfg.model).cfg
    changes = _model_args(cfg)
    if cfg.img_size is not None:
        changes["img_size"] = cfg.img_size
    return base.replace(**changes) if changes else base


def build_model(cfg: Any, num_classes: int) -> CrossViT:
    """Create the model with ``num_classes`` heads; pretrained / checkpoint weights are resized to fit."""
    extra = dict(_model_args(cfg), drop_rate=cfg.drop)
    if cfg.img_size is not None:
        extra["img_size"] = cfg.img_size
    if is_release_dir(cfg.initial_checkpoint):
        model = from_pretrained(
            cfg.initial_checkpoint,
            num_classes=num_classes,
            drop_path_rate=cfg.drop_path,
            **extra,
        )
    else:
        ckpt = cfg.initial_checkpoint
        if ckpt is not None and not Path(ckpt).exists():
            raise FileNotFoundError(f"--initial-checkpoint {ckpt}: no such file or release directory")
        model = create_model(
            cfg.model,
            pretrained=cfg.pretrained,
            num_classes=num_classes,
            drop_path_rate=cfg.drop_path,
            checkpoint=ckpt,
            **extra,
        )
        if cfg.pretrained and ckpt is None and get_pretrained_cfg(cfg.model) is None:
            raise ValueError(f"--pretrained: {cfg.model} has no released weights")
    model.pretrained_cfg = release_pretrained_cfg(cfg, model)
    return model


def release_pretrained_cfg(cfg: Any, model: CrossViT) -> dict[str, Any]:
    """The preprocessing a trained model is released with (timm ``pretrained_cfg`` fields)."""
    mean, std = norm_stats(cfg)
    h, w = model.cfg.img_size
    return {
        "input_size": [model.cfg.in_chans, h, w],
        "crop_pct": cfg.crop_pct,
        "crop_mode": "center",
        "interpolation": cfg.eval_interpolation,
        "mean": list(mean),
        "std": list(std),
    }
