"""``crossvit train``: train from scratch with the paper's recipe (DeiT's), on 1 process or under torchrun.

crossvit train                                           # no data: the bundled-digits demo recipe
crossvit train data/ --model crossvit_9_240 -b 128       # ImageFolder data/train, data/val
crossvit train -c configs/cifar10_32.yaml --epochs 50    # a recipe; flags override it
torchrun --nproc_per_node=2 -m crossvit train data/ ...  # DDP (gloo on CPU, NCCL on CUDA)
"""

from __future__ import annotations

import argparse
import json
import logging

import yaml

from ..train.demo import DIGITS_RECIPE
from ..train.options import add_train_arguments, resolve
from ..train.trainer import train

log = logging.getLogger("crossvit")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_train_arguments(p)
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def main(args: argparse.Namespace) -> int:
    given = vars(args)
    base = None
    if given.get("data") is None and not given.get("config"):
        base = dict(DIGITS_RECIPE)  # no data and no recipe: the embedded default
        log.info("no data given: training the embedded default (bundled digits, configs/digits_32.yaml)")
    cfg = resolve(args, base=base)
    cfg.validate()
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0

    r = train(cfg)
    if r["world"] > 1 and r["release_dir"] is None:
        return 0
    summary = {k: r[k] for k in ("run_dir", "release_dir", "top1", "top5", "best_top1", "epochs", "amp", "wall_s")}
    summary.update({k: r[k] for k in ("mAP", "f1_micro", "f1_macro") if k in r})  # multi-label validation
    print(json.dumps(summary, indent=2))
    return 0
