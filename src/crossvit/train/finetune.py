"""``crossvit finetune``: start from released, timm, official or our own weights; new classes and input size.

    crossvit finetune data/ --checkpoint crossvit_9_240 --epochs 30    # released ImageNet weights (downloaded)
    crossvit finetune data/ --checkpoint runs/x --img-size 48          # a run's release; pos-embeds resized
    crossvit finetune data/ --checkpoint crossvit_15_224.pth --model crossvit_15_240   # the official release file

``--checkpoint`` takes any model source (:mod:`crossvit.runtime.source`). The older ``crossvit finetune SOURCE
DATA`` still works for one release, with a deprecation warning.

Defaults are the paper's transfer recipe (Table 9, "Transfer"): SGD (momentum 0.9), lr 0.01 at batch 768 (scaled
linearly), weight decay 1e-4, 1000 epochs with 5 warm-up, drop-path 0, random erasing 0, RandAugment / mixup 0.8 /
cutmix 1.0 / smoothing 0.1 as for ImageNet. Heads of another class count are dropped and re-initialised.
"""

from __future__ import annotations

from typing import Any

from ..runtime.source import resolve_source
from .config import TrainConfig

TRANSFER_DEFAULTS: dict[str, Any] = {
    "opt": "sgd",
    "momentum": 0.9,
    "lr_base": 0.01,
    "lr_base_size": 768,
    "weight_decay": 1e-4,
    "epochs": 1000,
    "warmup_epochs": 5,
    "drop_path": 0.0,
    "reprob": 0.0,
    "aug_repeats": 0,
}


def source_options(source: str, model_name: str | None = None) -> dict[str, Any]:
    """Options that make a run start from ``source``, any model source (:func:`crossvit.runtime.source.resolve_source`):
    its weights as ``initial_checkpoint`` and, where the source knows it, its architecture as ``model``."""
    src = resolve_source(source, model_name)
    if src.kind == "name":
        return {"model": src.ref, "pretrained": True}
    out: dict[str, Any] = {"initial_checkpoint": src.ref}
    if src.model:
        out["model"] = src.model
    if src.config and "model_args" in src.config:  # our training checkpoint: its architecture's overrides too
        out["model_args"] = src.config["model_args"]
    return out


def finetune_config(source: str, data: str | None = None, **options: Any) -> TrainConfig:
    """The TrainConfig ``crossvit finetune SOURCE DATA --opt ...`` resolves to (transfer defaults < options)."""
    return TrainConfig(**{**TRANSFER_DEFAULTS, **source_options(source), "data": data, **options})
