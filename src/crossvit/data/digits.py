"""The embedded default data set: scikit-learn's bundled handwritten digits, no download needed.

1,797 grayscale 8x8 images of the digits 0-9 (UCI optdigits test set). We upsample them to ``size`` px RGB and hold
out a fixed, class-stratified validation split (same on every machine).

    train, val = digits_datasets(size=32, val_fraction=0.2)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .memory import InMemoryDataset

DIGIT_NAMES = [str(i) for i in range(10)]


def digits_arrays(size: int = 32) -> tuple[list[np.ndarray], list[int]]:
    """All 1,797 digits as (size, size, 3) uint8 RGB, bicubically upsampled from 8x8, and their labels."""
    from sklearn.datasets import load_digits  # loaded on first use (slow import)

    d = load_digits()
    out = []
    for img in d.images:  # (8, 8) floats in 0..16
        g = Image.fromarray(np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8), mode="L")
        g = g.resize((size, size), Image.BICUBIC)
        out.append(np.asarray(g.convert("RGB")))
    return out, [int(t) for t in d.target]


def digits_split(targets: list[int], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of a class-stratified split: ``val_fraction`` of each class goes to validation."""
    rng = np.random.default_rng(seed)
    t = np.asarray(targets)
    train, val = [], []
    for c in range(10):
        idx = np.flatnonzero(t == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(val_fraction * len(idx)))
        val += idx[:k].tolist()
        train += idx[k:].tolist()
    return sorted(train), sorted(val)


def digits_datasets(
    size: int = 32, val_fraction: float = 0.2, seed: int = 0
) -> tuple[InMemoryDataset, InMemoryDataset]:
    arrays, targets = digits_arrays(size)
    tr, va = digits_split(targets, val_fraction, seed)
    pick = lambda ids: ([arrays[i] for i in ids], [targets[i] for i in ids])  # noqa: E731
    return InMemoryDataset(*pick(tr), DIGIT_NAMES), InMemoryDataset(*pick(va), DIGIT_NAMES)
