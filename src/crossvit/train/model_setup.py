"""The model a run trains: a registered name (+ ``model_args``), released weights, or a checkpoint to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.factory import create_model
from ..io.hub import CONFIG_NAME, config_from_release, from_pretrained, load_config
from ..models.config import CrossViTConfig
from ..models.model import CrossViT
from ..models.registry import get_entry, get_pretrained_cfg
from ..models.timm_model import TimmClassifier, TimmConfig, is_timm_name
from ..runtime.source import Source, model_args, recipe_pretrained_cfg, resolve_source


def _model_args(cfg: Any) -> dict[str, Any]:
    return model_args({"model_args": cfg.model_args})


def _initial(cfg: Any) -> Source | None:
    """What ``--initial-checkpoint`` names (a release, run dir, checkpoint, weights file or hub id), or None."""
    ckpt = cfg.initial_checkpoint
    if ckpt is None:
        return None
    try:
        src = resolve_source(ckpt, cfg.model)
    except FileNotFoundError:
        raise FileNotFoundError(f"--initial-checkpoint {ckpt}: no such file or release directory") from None
    if src.kind == "name":
        raise FileNotFoundError(f"--initial-checkpoint {ckpt}: no such file or release directory")
    return src


def arch_config(cfg: Any) -> CrossViTConfig | TimmConfig:
    """Architecture implied by the options, before the class count is known (to size the data transforms)."""
    if is_timm_name(cfg.model):
        return _timm_arch(cfg)
    src = _initial(cfg)
    if src is not None and src.kind == "release":
        p = Path(src.ref) / CONFIG_NAME
        base = config_from_release(load_config(p), str(p))
    else:
        base = get_entry(cfg.model).cfg
    changes = _model_args(cfg)
    if cfg.img_size is not None:
        changes["img_size"] = cfg.img_size
    return base.replace(**changes) if changes else base


def _timm_arch(cfg: Any) -> TimmConfig:
    for flag, value in (("--pretrained", cfg.pretrained), ("--initial-checkpoint", cfg.initial_checkpoint)):
        if value:
            raise ValueError(f"{flag} with --model {cfg.model}: a timm architecture trains here from scratch")
    base = TimmConfig.for_name(cfg.model)
    return base.replace(**_model_args(cfg), **({"img_size": cfg.img_size} if cfg.img_size is not None else {}))


def build_model(cfg: Any, num_classes: int) -> CrossViT | TimmClassifier:
    """Create the model with ``num_classes`` heads; pretrained / checkpoint weights are resized to fit. It carries
    the preprocessing of this run's recipe, the one its release will record."""
    arch = arch_config(cfg).replace(num_classes=num_classes)
    if isinstance(arch, TimmConfig):
        return TimmClassifier(arch.replace(drop_rate=cfg.drop, drop_path_rate=cfg.drop_path),
                              pretrained_cfg=recipe_pretrained_cfg(cfg.to_dict(), arch))  # fmt: skip
    extra = dict(_model_args(cfg), drop_rate=cfg.drop, pretrained_cfg=recipe_pretrained_cfg(cfg.to_dict(), arch))
    if cfg.img_size is not None:
        extra["img_size"] = cfg.img_size
    src = _initial(cfg)
    if src is not None and src.kind == "release":
        return from_pretrained(src.ref, num_classes=num_classes, drop_path_rate=cfg.drop_path, **extra)
    model = create_model(
        cfg.model,
        pretrained=cfg.pretrained,
        num_classes=num_classes,
        drop_path_rate=cfg.drop_path,
        checkpoint=src.ref if src is not None else None,
        **extra,
    )
    if cfg.pretrained and src is None and get_pretrained_cfg(cfg.model) is None:
        raise ValueError(f"--pretrained: {cfg.model} has no released weights")
    return model
