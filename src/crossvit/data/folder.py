"""ImageFolder data: ``root/<class>/<image>``, scanned with clear errors, and a deterministic validation carve-out.

classes, samples = scan_folder("data/train")
train, val = split_samples(samples, 0.1, seed=0)     # same split on every run and every rank
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from ..io.images import IMG_EXTENSIONS, BadImageError, load_image
from .images import BadImagePolicy

Sample = tuple[str, int]


def scan_folder(root: str | Path, classes: list[str] | None = None) -> tuple[list[str], list[Sample]]:
    """Class names (sorted folder names) and (path, label) samples; errors name the directory at fault."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such data directory")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise ValueError(f"{root}: no class folders; expected {root}/<class>/<image>")
    if classes is None:
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise ValueError(f"{root}: class folder(s) {', '.join(extra)} are not among the training classes")
    samples: list[Sample] = []
    for label, name in enumerate(classes):
        d = root / name
        if not d.is_dir():
            continue  # a class absent from val/ is allowed
        files = sorted(
            p for p in d.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise ValueError(f"{d}: class folder holds no images ({', '.join(IMG_EXTENSIONS)})")
        samples += [(str(p), label) for p in files]
    return classes, samples


def split_samples(samples: list[Sample], size: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Deterministic per-class split. ``size`` < 1: that fraction of each class; >= 1: that many per class.

    Files are ordered by name, then shuffled with a generator seeded by (seed, class), so the split depends on the
    file names only: the same on every run, machine and rank.
    """
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s[1]].append(s)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        random.Random(f"{seed}-{label}").shuffle(items)
        k = int(size) if size >= 1 else max(1, round(size * len(items)))
        if k >= len(items):
            raise ValueError(
                f"--val-split-size {size}: class {label} has only {len(items)} images, none would be left for training"
            )
        val += items[:k]
        train += items[k:]
    return sorted(train, key=lambda s: (s[1], s[0])), sorted(val, key=lambda s: (s[1], s[0]))


class FolderDataset(Dataset):
    """(image, label) from a list of files; unreadable files follow ``policy`` (skip: the next good file stands in)."""

    def __init__(
        self,
        samples: list[Sample],
        classes: list[str],
        transform: Callable | None = None,
        policy: BadImagePolicy | None = None,
    ) -> None:
        self.samples = samples
        self.classes = classes
        self.transform = transform
        self.policy = policy or BadImagePolicy("skip")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [s[1] for s in self.samples]

    def load(self, index: int):
        """The decoded PIL image and label of ``index``; a bad file is replaced by the next readable one."""
        for k in range(len(self.samples)):
            path, label = self.samples[(index + k) % len(self.samples)]
            try:
                return load_image(path), label
            except BadImageError as e:
                self.policy.handle(e, path)
        raise BadImageError(f"none of the {len(self.samples)} images could be read")

    def __getitem__(self, index: int):
        img, label = self.load(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, label
