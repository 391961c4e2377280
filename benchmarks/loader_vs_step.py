"""Can data loading keep up with training? Images/s of the loader alone vs the training step alone.

    python benchmarks/loader_vs_step.py                                   # bundled digits, demo model
    python benchmarks/loader_vs_step.py --data ../shared/datasets/cifar10 --val-split-size 500 --workers 1 \
        --json loader.json                                                # ImageFolder of JPEGs, full train aug

The loader runs the real training transforms (RandomResizedCrop, RandAugment when --aa is set, erasing) and
collation; the step runs forward + backward + AdamW on a fixed batch of the same shape. The loader keeps up when
its images/s is above the step's.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils.data import DataLoader

from crossvit.data.build import build_data
from crossvit.train.config import TrainConfig
from crossvit.train.demo import DIGITS_RECIPE
from crossvit.train.model_setup import arch_config, build_model
from crossvit.train.optim import build_optimizer
from crossvit.train.precision import autocast, resolve_amp


def loader_rate(cfg: TrainConfig, img_size: int, batches: int) -> float:
    data = build_data(cfg, img_size)
    dl = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=not data.iterable, num_workers=cfg.workers,
                    drop_last=True, persistent_workers=False)  # fmt: skip
    it = iter(dl)
    next(it)  # worker start-up is not throughput
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            break
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def step_rate(cfg: TrainConfig, img_size: int, steps: int) -> float:
    model = build_model(cfg, 10)
    opt = build_optimizer(model, cfg, 1e-3)
    amp = resolve_amp(cfg.amp, torch.device("cpu"))
    x = torch.randn(cfg.batch_size, 3, img_size, img_size)  # (B, 3, H, W)
    y = torch.randint(0, 10, (cfg.batch_size,))
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with autocast(amp, torch.device("cpu")):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return cfg.batch_size * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="ImageFolder root (default: bundled digits)")
    p.add_argument("--val-split-size", type=float, default=None)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the step")
    p.add_argument("--aa", default=None, help="RandAugment policy for the loader (default: the recipe's)")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--json", default=None, help="also write the figures here")
    a = p.parse_args()
    over = {"data": a.data, "workers": a.workers, "threads": a.threads}
    if a.val_split_size is not None:
        over["val_fraction"] = a.val_split_size
    if a.aa is not None:
        over["aa"] = None if a.aa == "none" else a.aa
    cfg = TrainConfig(**{**DIGITS_RECIPE, **over})
    torch.set_num_threads(a.threads)
    size = arch_config(cfg).img_size[0]
    res = {
        "data": a.data or "digits",
        "aa": cfg.aa,
        "batch_size": cfg.batch_size,
        "img_size": size,
        "workers": a.workers,
        "threads": a.threads,
        "loader_img_s": loader_rate(cfg, size, a.batches),
        "step_img_s": step_rate(cfg, size, a.batches),
        "cpu": platform.processor() or platform.machine(),
    }
    res["loader_keeps_up"] = res["loader_img_s"] >= res["step_img_s"]
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
