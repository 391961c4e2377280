"""``crossvit finetune DATA --checkpoint SRC``: :func:`crossvit.train.finetune.finetune_config` with the training
options (see :mod:`crossvit.train.finetune`)."""

from __future__ import annotations

import argparse
import json
import sys

from ..train.config import TrainConfig
from ..train.finetune import TRANSFER_DEFAULTS, source_options
from ..train.options import add_train_arguments, resolve
from ..train.trainer import train


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default=None, help="deprecated (use --checkpoint): the source before DATA")
    p.add_argument(
        "--checkpoint", help="release dir, run dir, checkpoint, weights file (+ --model), hub id or released model name"
    )
    add_train_arguments(p, TrainConfig(**TRANSFER_DEFAULTS))


def source_and_data(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(model source, the positional DATA) from ``DATA --checkpoint SRC`` or the older ``SOURCE DATA``."""
    rest = [v for v in (args.source, getattr(args, "data", None)) if v is not None]
    if args.checkpoint is not None:
        return args.checkpoint, rest
    if not rest:
        raise ValueError("name the weights to start from: crossvit finetune DATA --checkpoint SRC")
    print(
        "crossvit finetune: `crossvit finetune SOURCE DATA` is deprecated and goes in the next release; "
        "use `crossvit finetune DATA --checkpoint SOURCE`",
        file=sys.stderr,
    )
    return rest[0], rest[1:]


def main(args: argparse.Namespace) -> int:
    source, rest = source_and_data(args)
    if len(rest) > 1:
        raise ValueError(f"one DATA, got {' '.join(rest)}")
    if rest:
        args.data = rest[0]
    elif hasattr(args, "data"):
        del args.data
    base = {**TRANSFER_DEFAULTS, **source_options(source, getattr(args, "model", None))}
    cfg = resolve(args, base=base)
    r = train(cfg)
    if r["release_dir"] is None and r["world"] > 1:
        return 0
    summary = {k: r[k] for k in ("run_dir", "release_dir", "top1", "top5", "best_top1", "wall_s")}
    summary.update({k: r[k] for k in ("mAP", "f1_micro", "f1_macro") if k in r})  # multi-label validation
    print(json.dumps(summary, indent=2))
    return 0
