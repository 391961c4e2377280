"""softmax(q k^T / sqrt(d)) v computed a few (image, head) pairs at a time, for CPU training.

With many tokens and a small head dimension (the S branch: 145 tokens of 16 channels per head in
``crossvit_cifar_36``, 401 of 32 in ``crossvit_9_240``), the explicit-matmul attention of a training step spends most
of its time streaming the (B, H, N, N) score matrix through memory: the score product writes it, softmax reads it and
writes the probabilities, the product with v reads those, and the backward pass reads the saved probabilities and
writes and reads two more matrices of that size (their gradient and the scores' gradient). Here each tile of
(image, head) pairs is small enough for the core's cache (a few MB of scores), so those passes stay in cache; the
backward pass recomputes a tile's probabilities from q and k instead of saving them, which also keeps the N x N
matrices out of the saved activations.

The arithmetic is the explicit-matmul path's, step for step and in the same precisions (under bf16 autocast: scores,
softmax and products all in bf16, as CPU autocast leaves softmax), so outputs and gradients agree with it to rounding
(tests/test_tiled_attention.py). Where tiles would not be smaller than the whole batch, or the head dimension is
large against the token count (then the products, not the memory passes, dominate), the plain path is used.
"""

from __future__ import annotations

import torch
from torch import Tensor

# scores in one tile: enough that the bmm calls are not dominated by their fixed cost, few enough to stay in a
# core's L2/L3 share (measured on AMD Zen 5, 2 threads, for 145 and 401 tokens)
TILE_SCORES = 2**20


def tile_rows(n_rows: int, n_tokens: int, head_dim: int) -> int:
    """How many (image, head) pairs one tile holds; ``n_rows`` (no tiling) where tiling does not pay."""
    if n_tokens < 128 or n_tokens < 4 * head_dim:
        return n_rows
    return max(1, min(n_rows, TILE_SCORES // (n_tokens * n_tokens)))


def _probs(q: Tensor, k: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """(R, N, d) x2 -> the scaled query (R, N, d) and the probabilities (R, N, N), rounded as the plain path's."""
    qs = q * scale
    return qs, torch.softmax(torch.bmm(qs, k.transpose(1, 2)), dim=-1)


class _TiledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, rows: int) -> Tensor:  # noqa: ANN001 - autograd context
        scale = q.shape[-1] ** -0.5
        outs = []
        for i in range(0, q.shape[0], rows):
            _, p = _probs(q[i : i + rows], k[i : i + rows], scale)
            outs.append(torch.bmm(p, v[i : i + rows]))
        ctx.save_for_backward(q, k, v)
        ctx.rows = rows
        return torch.cat(outs)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:  # noqa: ANN001
        q, k, v = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        grad = grad.contiguous()
        dq, dk, dv = [], [], []
        for i in range(0, q.shape[0], ctx.rows):
            t = slice(i, i + ctx.rows)
            qs, p = _probs(q[t], k[t], scale)
            g = grad[t]
            dv.append(torch.bmm(p.transpose(1, 2), g))
            dp = torch.bmm(g, v[t].transpose(1, 2))  # (R, N, N)
            ds = torch.ops.aten._softmax_backward_data(dp, p, -1, p.dtype)  # autograd's own softmax backward
            dq.append(torch.bmm(ds, k[t]) * scale)
            dk.append(torch.bmm(ds.transpose(1, 2), qs))
        return torch.cat(dq), torch.cat(dk), torch.cat(dv), None


def tiled_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """q, k, v: (B, H, N, d) -> (B, H, N, d); under autocast, in the precisions the plain matmul path would use."""
    B, H, N, d = q.shape
    rows = tile_rows(B * H, N, d)
    if rows >= B * H:
        return (q * d**-0.5 @ k.transpose(-2, -1)).softmax(dim=-1) @ v
    dtype = torch.get_autocast_dtype(q.device.type) if torch.is_autocast_enabled(q.device.type) else q.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = (t.to(dtype).reshape(B * H, N, d) for t in (q, k, v))  # (B, H, N, d) -> (B*H, N, d)
        return _TiledAttention.apply(q, k, v, rows).reshape(B, H, N, d)
