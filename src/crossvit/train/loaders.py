"""The data loaders of a run: worker-process DataLoaders over any data set, or whole-tensor loaders in memory."""

from __future__ import annotations

import logging
import os

import torch
from torch.utils.data import DataLoader

from ..data.build import Data, describe
from ..data.samplers import ShardSampler, train_sampler
from ..data.tensor_loader import TensorLoader, stack_images
from ..data.transforms import norm_stats
from .config import TrainConfig
from .distributed import DistInfo

log = logging.getLogger("crossvit")


def memory_loaders(cfg: TrainConfig, data: Data, dist: DistInfo, img_size: int | None = None):
    """Whole-tensor loaders (``--loader memory``): the data set decoded once, batches augmented by tensor ops and
    resized to ``img_size`` (the model's input) when the stored images have another size."""
    if data.iterable or not hasattr(data.train, "arrays"):
        raise ValueError(f"--loader memory: needs an ImageFolder or the bundled digits, not {data.kind} data")
    mean, std = norm_stats(cfg)

    def make(ds, train: bool) -> TensorLoader:
        images = stack_images(ds.arrays, describe(cfg.data))
        labels = torch.as_tensor(ds.targets)
        augment = dict(
            pad=cfg.crop_pad, hflip=cfg.hflip, reprob=cfg.reprob, remode=cfg.remode, recount=cfg.recount,
            auto_augment=cfg.aa,
        )  # fmt: skip
        kw = augment if train else {}
        interp = cfg.train_interpolation if train else cfg.eval_interpolation
        loader = TensorLoader(
            images, labels, cfg.batch_size, train, mean, std, seed=cfg.seed, rank=dist.rank, world=dist.world,
            size=(img_size, img_size) if img_size else None, interpolation=interp, **kw,
        )  # fmt: skip
        if loader.size is not None and train and dist.rank == 0:  # the loader decides whether the sizes differ
            log.info(
                "--loader memory: %dx%d images resized to %dx%d per batch (%s)",
                *images.shape[-2:],
                *loader.size,
                interp,
            )
        return loader

    train_dl = make(data.train, True)
    steps = len(train_dl) // cfg.grad_accum_steps  # optimizer steps; each takes grad_accum_steps batches
    if steps < 1:
        raise ValueError(f"--batch-size {cfg.batch_size}: larger than the {data.train_len} training images per process")
    val_dl = make(data.val, False) if data.val is not None else None
    return train_dl, train_dl, steps, val_dl


def build_loaders(cfg: TrainConfig, data: Data, dist: DistInfo, img_size: int | None = None):
    """(train loader, its sampler (``set_epoch``), optimizer steps per epoch, val loader or None) for this process."""
    if cfg.loader == "memory":
        return memory_loaders(cfg, data, dist, img_size)
    workers = min(cfg.workers, num_threads_hint())  # more workers than CPUs only adds contention
    common = {"num_workers": workers, "pin_memory": dist.device.type == "cuda"}
    if data.iterable:
        train_dl = DataLoader(data.train, batch_size=cfg.batch_size, drop_last=True, **common)
        steps = data.train_len // cfg.global_batch(dist.world)
        sampler = data.train
    else:
        sampler = train_sampler(data.train, dist.rank, dist.world, cfg.seed, cfg.resolved_aug_repeats())
        train_dl = DataLoader(data.train, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **common)
        steps = len(train_dl) // cfg.grad_accum_steps  # optimizer steps; each takes grad_accum_steps batches
    if steps < 1:
        accum = f" x --grad-accum-steps {cfg.grad_accum_steps}" if cfg.grad_accum_steps > 1 else ""
        raise ValueError(
            f"--batch-size {cfg.batch_size}{accum}: larger than the {data.train_len} training images per "
            f"{'process' if dist.world == 1 else f'each of {dist.world} processes'}; lower it"
        )
    val_dl = None
    if data.val is not None:
        kw = {} if data.iterable else {"sampler": ShardSampler(len(data.val), dist.rank, dist.world)}
        val_dl = DataLoader(data.val, batch_size=cfg.batch_size, **kw, **common)
    return train_dl, sampler, steps, val_dl


def num_threads_hint() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
