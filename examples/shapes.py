"""A tiny synthetic data set: squares and discs on a noisy background, with boxes, labels and masks."""

from __future__ import annotations

import torch
from torch import Tensor

CLASSES = ("background", "square", "disc")


def make_shapes(n: int, size: int = 64, seed: int = 0, max_objects: int = 2) -> list[dict[str, Tensor]]:
    """``n`` samples: image (3, size, size) in [0, 1], boxes (k, 4) xyxy, labels (k,) in {1, 2}, mask (size, size)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")  # (size, size) each
    out = []
    for _ in range(n):
        img = 0.4 + 0.1 * torch.rand(3, size, size, generator=g)
        mask = torch.zeros(size, size, dtype=torch.long)
        boxes, labels = [], []
        for _ in range(int(torch.randint(1, max_objects + 1, (1,), generator=g))):
            s = int(torch.randint(size // 5, size // 2, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
            cls = int(torch.randint(1, 3, (1,), generator=g))
            if cls == 1:
                inside = (xx >= x0) & (xx < x0 + s) & (yy >= y0) & (yy < y0 + s)
            else:
                r = s / 2
                inside = (xx + 0.5 - x0 - r) ** 2 + (yy + 0.5 - y0 - r) ** 2 <= r * r
            img[:, inside] = torch.rand(3, 1, generator=g) * 0.3 + (0.7 if cls == 1 else 0.0)
            mask[inside] = cls
            boxes.append([x0, y0, x0 + s, y0 + s])
            labels.append(cls)
        out.append(
            {"image": img, "boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
             "mask": mask}
        )  # fmt: skip
    return out
