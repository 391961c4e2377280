"""``crossvit demo``: train a small CrossViT on scikit-learn's bundled digits, validate it, predict, release it.

    crossvit demo                 # ~2 min on 2 CPU cores; prints val top-1, wall time, a few predictions
    crossvit demo --quick         # 2 epochs, seconds: a smoke test
    crossvit train                # the same run through the general trainer (no data argument)

The recipe (``DIGITS_RECIPE``, also ``configs/digits_32.yaml``) is the paper's recipe shrunk to 1,437 training
images of 32 px: a 2-branch CrossViT whose S branch cuts 4-px patches (8x8 tokens, width 64) and whose L branch cuts
6-px patches of a 24-px copy (4x4 tokens, width 128), see ``DIGITS_MODEL``. Light augmentation only (random
resized crops): no RandAugment, mixup/cutmix or erasing, and no flips (a flipped 2 is no 2).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..data.digits import digits_datasets
from ..data.transforms import eval_transform
from ..io.hub import from_pretrained
from .config import TrainConfig
from .trainer import train

log = logging.getLogger("crossvit")

# S branch: 32 px, patch 4 -> 8x8 = 64 tokens, width 64. L branch: 32 px scaled to 24, patch 6 -> 4x4 = 16 tokens,
# width 128. K=2 encoders of N=1 / M=2 blocks and one cross-attention each.
DIGITS_MODEL: dict[str, Any] = {
    "img_size": [32, 32],
    "img_scale": [1.0, 0.75],
    "patch_size": [4, 6],
    "embed_dim": [64, 128],
    "num_heads": [4, 4],
    "mlp_ratio": [2.0, 2.0],
    "num_encoders": 2,
    "small_depth": 1,
    "large_depth": 2,
    "cross_depth": 1,
}

DIGITS_RECIPE: dict[str, Any] = {
    "data": None,
    "model": "crossvit_tiny_240",
    "model_args": DIGITS_MODEL,
    "epochs": 25,
    "warmup_epochs": 2,
    "batch_size": 16,  # more, smaller steps: 82% val top-1 after 9 epochs vs 55% at batch 32, lr 2e-3 (measured)
    "lr": 1e-3,
    "min_lr": 1e-5,
    "weight_decay": 0.02,
    "aa": None,  # RandAugment slows learning too much for a 25-epoch run on 1,437 images (measured)
    "color_jitter": 0.0,
    "hflip": 0.0,
    "scale": [0.9, 1.0],
    "reprob": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "smoothing": 0.1,
    "drop_path": 0.0,
    "crop_pct": 1.0,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "amp": "fp32",  # bf16 autocast is slower than fp32 at this width on CPU (measured; see docs/training.md)
    "workers": 0,  # in-memory 32-px images: worker processes cost more than they save
    # One thread: at this size a 2-thread step is only ~1.5x faster on an idle machine but ~10x slower when other
    # jobs share the cores (measured 24 vs 231 img/s), since each op waits for the descheduled thread.
    "threads": 1,
    "log_interval": 1000,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default {DIGITS_RECIPE['epochs']})")
    p.add_argument("--quick", action="store_true", help="2 epochs: a smoke test in seconds")
    p.add_argument("--output", default="runs", help="parent of the run directory (default: runs)")
    p.add_argument("--experiment", default=None, help="run directory name (default: demo-<time>)")
    p.add_argument("--amp", default=None, choices=("auto", "bf16", "fp32"), help="precision (default fp32)")
    p.add_argument("--seed", type=int, default=0, help="random seed")


def one_per_class(targets: Sequence[int], seed: int) -> list[int]:
    """One index per class (classes in order), drawn with ``seed``: a sample whose hits and misses are typical.

    A fixed stride can land on the few errors of a good model (3 of 8 shown wrong at 98% top-1) and mislead.
    """
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    return [rng.choice(by_class[c]) for c in sorted(by_class)]


def run_demo(
    epochs: int | None = None,
    output: str = "runs",
    experiment: str | None = None,
    amp: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train, validate and predict on the bundled digits; returns train()'s result plus ``predictions``."""
    over: dict[str, Any] = {"output": output, "seed": seed}
    over["experiment"] = experiment or f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if epochs is not None:
        over["epochs"] = epochs
        over["warmup_epochs"] = min(DIGITS_RECIPE["warmup_epochs"], max(0, epochs - 1))
    if amp is not None:
        over["amp"] = amp
    cfg = TrainConfig(**{**DIGITS_RECIPE, **over})
    result = train(cfg)

    # predict a few validation images with the released model, as a user would

    model = from_pretrained(result["release_dir"]).eval()
    _, val = digits_datasets(size=32, val_fraction=0.2)
    tf = eval_transform(cfg, 32)
    idx = one_per_class(val.targets, seed)
    x = torch.stack([tf(val.load(i)[0]) for i in idx])  # (n_classes, 3, 32, 32)
    with torch.no_grad():
        probs = model(x).softmax(-1)  # (n_classes, 10)
    preds = []
    for i, p in zip(idx, probs):
        k = int(p.argmax())
        preds.append({"index": i, "label": val.targets[i], "pred": model.label_names[k], "prob": float(p[k])})
    result["predictions"] = preds
    return result


def main(args: argparse.Namespace) -> int:
    epochs = 2 if args.quick and args.epochs is None else args.epochs
    r = run_demo(epochs, args.output, args.experiment, args.amp, args.seed)
    print(f"predictions (one validation image per class, seed {args.seed}):")
    for p in r["predictions"]:
        mark = "ok" if str(p["label"]) == p["pred"] else "WRONG"
        print(f"  image {p['index']:3d}: true {p['label']}  predicted {p['pred']}  p={p['prob']:.2f}  {mark}")
    print(
        f"digits val top-1 {r['top1']:.2f}%  top-5 {r['top5']:.2f}%  ({r['epochs']} epochs, {r['amp']}, "
        f"wall time {r['wall_s']:.0f} s)"
    )
    print(f"release: {r['release_dir']}   (crossvit predict IMAGE --checkpoint {r['release_dir']})")
    return 0
