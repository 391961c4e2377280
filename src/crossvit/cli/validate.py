"""``crossvit validate``: top-1/top-5, loss, per-class and single-branch accuracy, confusion-matrix PNG, JSON.

crossvit validate data/ --checkpoint runs/x         # data/val (or data/) as ImageFolder; the run's release
crossvit validate digits --checkpoint runs/x/best.pth   # a training checkpoint on the bundled digits
crossvit validate imagenet/ --checkpoint crossvit_9_240 --img-size 288 --crop-pct 1.0
crossvit validate ../shared/datasets/cifar10/train --checkpoint releases/cifar10-3h --val-split-size 500 --tta flip

``--checkpoint`` takes any model source (:mod:`crossvit.runtime.source`). The older ``crossvit validate MODEL
[DATA]`` still works for one release, with a deprecation warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..train.tta import TTA_CHOICES
from ..train.validation import validate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", help="ImageFolder dir (its val/ if present) or 'digits' (default)")
    p.add_argument(
        "--checkpoint", help="release dir, run dir, last.pth/best.pth, weights file (+ --model), hub id or model name"
    )
    p.add_argument("--model", dest="model_name", default=None, help="architecture of a plain weights file")
    p.add_argument("--img-size", type=int, default=None, help="evaluate at this resolution (pos-embeds resized)")
    p.add_argument("--crop-pct", type=float, default=None, help="resize to size / crop_pct, centre-crop size")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("-j", "--workers", type=int, default=2)
    p.add_argument("--amp", default="fp32", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--runtime",
        default="torch",
        choices=("torch", "openvino"),
        help="torch, or openvino (CPU; pip install openvino; --amp bf16 sets its bf16 hint). OpenVINO runs the "
        "whole model, so the single-branch accuracies are not reported with it",
    )
    p.add_argument(
        "--tta",
        default="none",
        choices=TTA_CHOICES,
        help="flip: average each image's logits with its mirror's; flip-shift: also both moved by one pixel (6 views)",
    )
    p.add_argument(
        "--val-split-size",
        type=float,
        default=None,
        help="evaluate the split `crossvit train --val-split-size` carves out of DATA (N per class, or a fraction)",
    )
    p.add_argument("--out-dir", default=None, help="where metrics.json and confusion.png go (default: runs/validate-*)")
    p.add_argument("--json", action="store_true", help="print the full metrics as JSON")


def model_and_data(args: argparse.Namespace) -> tuple[str, str]:
    """(model source, data) from ``DATA --checkpoint SRC`` or the older ``MODEL [DATA]``."""
    if args.checkpoint is not None:
        if len(args.data) > 1:
            raise ValueError(f"one DATA with --checkpoint, got {' '.join(args.data)}")
        return args.checkpoint, args.data[0] if args.data else "digits"
    if not args.data or len(args.data) > 2:
        raise ValueError("name the model: crossvit validate DATA --checkpoint SRC")
    print(
        "crossvit validate: `crossvit validate MODEL DATA` is deprecated and goes in the next release; "
        "use `crossvit validate DATA --checkpoint MODEL`",
        file=sys.stderr,
    )
    return args.data[0], args.data[1] if len(args.data) > 1 else "digits"


def main(args: argparse.Namespace) -> int:
    if args.crop_pct is not None and not 0 < args.crop_pct <= 1:
        raise ValueError(f"--crop-pct must be in (0, 1], got {args.crop_pct}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = args.out_dir or f"runs/validate-{time.strftime('%Y%m%d-%H%M%S')}"
    source, data = model_and_data(args)
    m = validate(
        source,
        data,
        args.img_size,
        args.crop_pct,
        args.batch_size,
        args.workers,
        args.amp,
        args.device,
        out,
        args.model_name,
        args.runtime,
        args.tta,
        args.val_split_size,
    )
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    tta = f"  ({m['tta']} TTA)" if m["tta"] != "none" else ""
    print(f"images {m['images']}  top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}{tta}")
    if "int8" in m:
        q = m["int8"]
        print(f"int8 (OpenVINO, NNCF) top-1 {q['top1']:.2f}%  top-5 {q['top5']:.2f}%  loss {q['loss']:.4f}  "
              f"(fp32 {m['top1']:.2f}%, {q['top1'] - m['top1']:+.2f} points)")  # fmt: skip
    if "top1_branch_s" in m:
        s, l_ = m["top1_branch_s"], m["top1_branch_l"]
        print(f"single branch top-1: S (small patches) {s:.2f}%  L (large patches) {l_:.2f}%")
    worst = sorted((v, k) for k, v in m["per_class"].items() if v is not None)[:5]
    print("lowest per-class accuracy: " + ", ".join(f"{k} {v:.1f}%" for v, k in worst))
    print(f"wrote {out}/metrics.json and {out}/confusion.png")
    return 0
