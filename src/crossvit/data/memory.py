"""Images held in memory, decoded once: the bundled digits and ``--cache-images``.

ds = cache_dataset(FolderDataset(...))     # decodes every file now; later epochs read RAM only
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

log = logging.getLogger("crossvit")


class InMemoryDataset(Dataset):
    """Decoded uint8 HWC RGB arrays + labels. Workers forked after construction share the memory copy-on-write."""

    def __init__(
        self, arrays: list[np.ndarray], targets: list[int], classes: list[str], transform: Callable | None = None
    ) -> None:
        if len(arrays) != len(targets):
            raise ValueError(f"{len(arrays)} images but {len(targets)} labels")
        self.arrays = arrays
        self._targets = list(targets)
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    @property
    def targets(self) -> list[int]:
        return self._targets

    def load(self, index: int):
        return Image.fromarray(self.arrays[index]), self._targets[index]

    def __getitem__(self, index: int):
        img, label = self.load(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, label


def cache_dataset(ds, transform: Callable | None = None) -> InMemoryDataset:
    """Decode every image of ``ds`` (anything with ``load(i) -> (PIL, label)``) into memory, once."""
    t0 = time.perf_counter()
    arrays, targets = [], []
    for i in range(len(ds)):
        img, label = ds.load(i)
        arrays.append(np.asarray(img, dtype=np.uint8))
        targets.append(label)
    mb = sum(a.nbytes for a in arrays) / 2**20
    log.info("cached %d decoded images (%.0f MiB) in %.1f s", len(arrays), mb, time.perf_counter() - t0)
    return InMemoryDataset(arrays, targets, ds.classes, transform if transform is not None else ds.transform)
