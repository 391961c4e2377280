"""Multi-label data: an image folder plus a CSV of ``path,label1;label2;...`` rows (several labels per image).

    path,labels                 <- optional header
    img/001.jpg,cat;dog
    img/002.jpg,dog
    img/003.jpg,                <- no label: a negative for every class

Paths are relative to the data directory (or absolute). The label vocabulary is the sorted set of labels in the
training CSV, or ``--label-names`` (which fixes the order). Every row is checked before training: a missing image
or a label outside the vocabulary is an error naming the CSV, its line and the path or label.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import torch

from .folder import FolderDataset
from .images import BadImagePolicy

MultiSample = tuple[str, list[int]]


def read_label_rows(csv_path: Path, root: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, image path, label names) of every data row; a missing image is an error naming both."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"--labels-csv {csv_path}: no such file")
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if line == 1 and row[0].strip().lower() in ("path", "image", "file", "filename"):
                continue  # header
            if len(row) > 2:
                raise ValueError(
                    f"{csv_path}:{line}: expected 'path,label1;label2;...' (two columns), got {len(row)} columns"
                )
            rel = row[0].strip()
            p = Path(rel) if Path(rel).is_absolute() else root / rel
            if not p.is_file():
                raise FileNotFoundError(f"{csv_path}:{line}: image {rel} not found (looked for {p})")
            labels = [s.strip() for s in (row[1] if len(row) > 1 else "").split(";") if s.strip()]
            rows.append((line, str(p), labels))
    if not rows:
        raise ValueError(f"{csv_path}: holds no rows of 'path,label1;label2;...'")
    return rows


def scan_label_csv(
    csv_path: str | Path, root: str | Path, classes: list[str] | None = None
) -> tuple[list[str], list[MultiSample]]:
    """Class names and (path, label indices) samples; ``classes`` given: labels outside it are an error."""
    csv_path, root = Path(csv_path), Path(root)
    rows = read_label_rows(csv_path, root)
    if classes is None:
        classes = sorted({lab for _, _, labs in rows for lab in labs})
        if not classes:
            raise ValueError(f"{csv_path}: no row names a label")
    index = {c: i for i, c in enumerate(classes)}
    samples: list[MultiSample] = []
    for line, path, labs in rows:
        unknown = [lab for lab in labs if lab not in index]
        if unknown:
            raise ValueError(
                f"{csv_path}:{line}: unknown label(s) {', '.join(map(repr, unknown))} (known: "
                f"{', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})"
            )
        samples.append((path, sorted({index[lab] for lab in labs})))
    return classes, samples


def split_multilabel(samples: list[MultiSample], size: float, seed: int = 0) -> tuple[list, list]:
    """Deterministic split by file name: ``size`` < 1 a fraction, >= 1 a number of images for validation."""
    items = sorted(samples)
    random.Random(f"{seed}-multilabel").shuffle(items)
    k = int(size) if size >= 1 else max(1, round(size * len(items)))
    if k >= len(items):
        raise ValueError(f"--val-split-size {size}: only {len(items)} images, none would be left for training")
    return sorted(items[k:]), sorted(items[:k])


class MultiLabelDataset(FolderDataset):
    """(image, multi-hot (num_classes,) float target); samples are (path, [label indices]). Reading, and the
    policy for unreadable files, are FolderDataset's."""

    def target(self, labels: list[int]) -> torch.Tensor:
        t = torch.zeros(len(self.classes))
        t[labels] = 1.0
        return t  # (num_classes,)

    def __getitem__(self, index: int):
        img, labels = self.load(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.target(labels)


def multilabel_sets(cfg, root: Path, tt, et, policy: BadImagePolicy):
    """(train, val or None, classes) for ``--labels-csv`` data under ``root``."""
    train_csv = Path(cfg.labels_csv).expanduser()
    if not train_csv.is_absolute() and not train_csv.is_file():
        train_csv = root / train_csv
    classes, train_s = scan_label_csv(train_csv, root, list(cfg.label_names) if cfg.label_names else None)
    val_csv = train_csv.with_name(f"{cfg.val_split}.csv")
    if cfg.val_fraction is not None:
        train_s, val_s = split_multilabel(train_s, cfg.val_fraction)
    elif val_csv.is_file() and val_csv != train_csv:
        _, val_s = scan_label_csv(val_csv, root, classes)
    else:
        val_s = []
    tr = MultiLabelDataset(train_s, classes, tt, policy)
    va = MultiLabelDataset(val_s, classes, et, policy) if val_s else None
    return tr, va, classes
