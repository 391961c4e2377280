"""Position embeddings on a new patch grid: how one set of weights serves another input size."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_pos_embed(
    pe: Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None, num_prefix: int = 1
) -> Tensor:
    """Bicubic resize of a (1, prefix + h*w, C) position embedding on its 2-D grid; prefix (CLS) slots are kept."""
    prefix, grid = pe[:, :num_prefix], pe[:, num_prefix:]
    n = grid.shape[1]
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"cannot infer the grid of a position embedding with {n} patch tokens; give it")
        old_grid = (side, side)
    if tuple(old_grid) == tuple(new_grid):
        return pe
    C = grid.shape[-1]
    g = grid.reshape(1, *old_grid, C).permute(0, 3, 1, 2).float()  # (1, C, h, w)
    g = F.interpolate(g, size=new_grid, mode="bicubic", align_corners=False)
    g = g.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], C).to(pe.dtype)
    return torch.cat((prefix, g), dim=1)
