"""Tiny generated data sets for tests, smoke runs and benchmarks: class-coloured noise images in ImageFolder layout.

make_image_folder("/tmp/toy", classes=3, per_class=8, size=16)     # /tmp/toy/{train,val}/class_k/*.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def toy_image(label: int, index: int, size: int = 16, seed: int = 0) -> Image.Image:
    """A size x size RGB image: a class-specific base colour plus per-image noise (deterministic)."""
    rng = np.random.default_rng([seed, label, index])
    base = np.array([(label * 97) % 256, (label * 57 + 80) % 256, (label * 151 + 30) % 256], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(img)


def make_image_folder(
    root: str | Path, classes: int = 3, per_class: int = 8, size: int = 16, val_per_class: int = 2, seed: int = 0
) -> Path:
    """Write ``root/train/class_k/NNN.png`` (and ``root/val/...`` when ``val_per_class``); returns ``root``."""
    root = Path(root)
    for split, n in (("train", per_class), ("val", val_per_class)):
        if n <= 0:
            continue
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                toy_image(c, i + (0 if split == "train" else 10_000), size, seed).save(d / f"{i:03d}.png")
    return root
