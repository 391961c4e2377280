"""``crossvit finetune``: start from released, timm, official or our own weights; new classes and input size.

    crossvit finetune crossvit_9_240 data/ --epochs 30           # released ImageNet weights (downloaded)
    crossvit finetune runs/x/release data/ --img-size 48         # our release dir; pos-embeds resized bicubically
    crossvit finetune crossvit_15_224.pth data/ --model crossvit_15_240   # the official release file

Defaults are the paper's transfer recipe (Table 9, "Transfer"): SGD (momentum 0.9), lr 0.01 at batch 768 (scaled
linearly), weight decay 1e-4, 1000 epochs with 5 warm-up, drop-path 0, random erasing 0, RandAugment / mixup 0.8 /
cutmix 1.0 / smoothing 0.1 as for ImageNet. Heads of another class count are dropped and re-initialised.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .config import TrainConfig, add_train_arguments, resolve

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


def source_options(source: str) -> dict[str, Any]:
    """Options that make a run start from ``source`` (release dir, run dir, weights file, or model name)."""
    from ..hub import CONFIG_NAME, load_config
    from ..registry import list_models, resolve_name

    p = Path(source)
    if p.is_dir():
        if not (p / CONFIG_NAME).is_file() and (p / "release" / CONFIG_NAME).is_file():
            p = p / "release"
        arch = load_config(p / CONFIG_NAME).get("architecture", "")
        out: dict[str, Any] = {"initial_checkpoint": str(p)}
        if arch in list_models():
            out["model"] = arch
        return out
    if p.is_file():
        out = {"initial_checkpoint": str(p)}
        side = p.with_name(p.name + ".sha256")
        if side.exists():  # our training checkpoint: take its architecture
            from .checkpoint import load_checkpoint

            conf = load_checkpoint(p).get("config") or {}
            out.update({k: conf[k] for k in ("model", "model_args") if k in conf})
        return out
    if p.suffix in (".pth", ".pt", ".bin", ".safetensors") or "/" in source:
        raise FileNotFoundError(f"{source}: no such weights file or release directory")
    return {"model": resolve_name(source), "pretrained": True}


def finetune_config(source: str, data: str | None = None, **options: Any) -> TrainConfig:
    """The TrainConfig ``crossvit finetune SOURCE DATA --opt ...`` resolves to (transfer defaults < options)."""
    return TrainConfig(**{**TRANSFER_DEFAULTS, **source_options(source), "data": data, **options})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="release dir, run dir, weights file (.pth/.safetensors) or released model name")
    add_train_arguments(p, TrainConfig(**TRANSFER_DEFAULTS))


def main(args: argparse.Namespace) -> int:
    from .trainer import train

    base = {**TRANSFER_DEFAULTS, **source_options(args.source)}
    cfg = resolve(args, base=base)
    r = train(cfg)
    if r["release_dir"] is None and r["world"] > 1:
        return 0
    summary = {k: r[k] for k in ("run_dir", "release_dir", "top1", "top5", "best_top1", "wall_s")}
    summary.update({k: r[k] for k in ("mAP", "f1_micro", "f1_macro") if k in r})  # multi-label validation
    print(json.dumps(summary, indent=2))
    return 0
