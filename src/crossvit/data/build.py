"""From a :class:`TrainConfig` to train / val data sets: bundled digits, ImageFolder dirs or tar shards.

Everything here is checked before training starts, so a missing directory, an empty class folder or a bad split
fails in seconds with the path in the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .digits import DIGIT_NAMES, digits_datasets
from .folder import FolderDataset, scan_folder, split_samples
from .images import BadImagePolicy
from .memory import cache_dataset
from .multilabel import multilabel_sets
from .shards import ShardDataset, list_shards, scan_shards
from .transforms import eval_transform, train_transform

log = logging.getLogger("crossvit")

DIGITS = "digits"  # --data value (or no --data) for the bundled data set


@dataclass
class Data:
    train: Any  # map-style Dataset or ShardDataset
    val: Any | None
    classes: list[str]
    kind: str  # "digits" | "folder" | "shards"
    train_len: int  # images per epoch over all ranks
    val_len: int

    @property
    def iterable(self) -> bool:
        return self.kind == "shards"


def describe(data: str | None) -> str:
    return "bundled digits (scikit-learn)" if data in (None, DIGITS) else str(data)


def build_data(cfg: Any, img_size: int, rank: int = 0, world: int = 1, run_dir: Path | None = None) -> Data:
    """Data sets with their transforms for ``cfg``; ``img_size`` is the model's input size."""
    policy = BadImagePolicy(cfg.on_bad_image, run_dir / "skipped_images.txt" if run_dir else None)
    tt, et = train_transform(cfg, img_size), eval_transform(cfg, img_size)
    if cfg.data in (None, DIGITS):
        frac = 0.2 if cfg.val_fraction is None else cfg.val_fraction
        if not 0 < frac < 1:
            raise ValueError(f"--val-split-size: the digits split takes a fraction in (0, 1), got {frac}")
        tr, va = digits_datasets(size=img_size, val_fraction=frac, seed=0)
        tr.transform, va.transform = tt, et
        return Data(tr, va, list(DIGIT_NAMES), DIGITS, len(tr), len(va))

    root = Path(cfg.data).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such data directory")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: data must be a directory (ImageFolder root or shards dir)")
    if getattr(cfg, "labels_csv", None):
        tr, va, classes = multilabel_sets(cfg, root, tt, et, policy)
        if va is None:
            log.warning(
                "no %s.csv next to --labels-csv and no --val-split-size: training without validation", cfg.val_split
            )
        return Data(tr, va, classes, "multilabel", len(tr), len(va) if va is not None else 0)
    train_dir = root / cfg.train_split
    val_dir = root / cfg.val_split
    if not train_dir.is_dir():
        if any(p.is_dir() for p in root.iterdir()) and cfg.val_fraction is not None:
            train_dir = root  # class folders directly under root, validation carved out below
        else:
            raise FileNotFoundError(
                f"{train_dir}: missing; expected {root}/{cfg.train_split}/<class>/<image> (and {cfg.val_split}/), "
                f"or class folders directly under {root} with --val-split-size"
            )

    shards = list_shards(train_dir)
    if shards:
        return _shard_data(cfg, shards, list_shards(val_dir) if val_dir.is_dir() else [], tt, et, rank, world, policy)

    classes, samples = scan_folder(train_dir)
    if len(classes) == 1:
        raise ValueError(
            f"{train_dir}: holds one class folder ({classes[0]}/), so every label is 0 and the loss is 0 from the "
            f"first step. A classifier needs >= 2 classes: did you point at a class folder, or put all images in one "
            f"folder? Expected {train_dir}/<class>/<image> with a folder per class"
        )
    if cfg.val_fraction is not None:
        train_s, val_s = split_samples(samples, cfg.val_fraction, seed=0)
        log.info(
            "validation: %d images carved out of %s (--val-split-size %s)", len(val_s), train_dir, cfg.val_fraction
        )
    elif val_dir.is_dir():
        train_s = samples
        _, val_s = scan_folder(val_dir, classes)
    else:
        train_s, val_s = samples, []
        log.warning("no %s and no --val-split-size: training without validation", val_dir)
    tr = FolderDataset(train_s, classes, tt, policy)
    va = FolderDataset(val_s, classes, et, policy) if val_s else None
    if cfg.cache_images or getattr(cfg, "loader", "workers") == "memory":
        tr = cache_dataset(tr)
        va = cache_dataset(va) if va is not None else None
    return Data(tr, va, classes, "folder", len(tr), len(va) if va is not None else 0)


def _shard_data(cfg, train_shards, val_shards, tt, et, rank, world, policy) -> Data:
    n_train, k_train = scan_shards(train_shards)
    n_val, k_val = scan_shards(val_shards) if val_shards else (0, 0)
    if n_train == 0:
        raise ValueError(f"{train_shards[0].parent}: the .tar shards hold no samples")
    k = cfg.num_classes or max(k_train, k_val)
    if k < 2:
        raise ValueError(
            f"{train_shards[0].parent}: the shards hold labels of one class only, so the loss is 0 from the first "
            "step; a classifier needs >= 2 classes (are the .cls labels written?)"
        )
    classes = list(cfg.label_names) if cfg.label_names else [str(i) for i in range(k)]
    tr = ShardDataset(train_shards, tt, train=True, rank=rank, world=world, seed=cfg.seed, policy=policy)
    va = ShardDataset(val_shards, et, train=False, rank=rank, world=world, policy=policy) if val_shards else None
    if cfg.cache_images:
        log.warning("--cache-images applies to ImageFolder data, not tar shards; ignored")
    return Data(tr, va, classes, "shards", n_train, n_val)
