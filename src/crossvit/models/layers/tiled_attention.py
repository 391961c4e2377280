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


# Registered as operators (not an autograd.Function) so that torch.compile calls them as they are: traced, the tile
# loop would be unrolled and Inductor's attention pattern would swap each tile's products for the CPU flash kernel,
# slower here than these matmuls. Each writes its tiles into one output (no concatenation copies).
@torch.library.custom_op("crossvit::tiled_attention", mutates_args=())
def _forward(q: Tensor, k: Tensor, v: Tensor, rows: int) -> Tensor:
    """(R, N, d) x3 -> (R, N, d), ``rows`` of R at a time."""
    scale = q.shape[-1] ** -0.5
    out = torch.empty_like(q)
    for i in range(0, q.shape[0], rows):
        _, p = _probs(q[i : i + rows], k[i : i + rows], scale)
        torch.bmm(p, v[i : i + rows], out=out[i : i + rows])
    return out


@torch.library.custom_op("crossvit::tiled_attention_backward", mutates_args=())
def _backward(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, rows: int) -> tuple[Tensor, Tensor, Tensor]:
    """The three input gradients, each tile's probabilities recomputed from q and k."""
    scale = q.shape[-1] ** -0.5
    grad = grad.contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    for i in range(0, q.shape[0], rows):
        t = slice(i, i + rows)
        qs, p = _probs(q[t], k[t], scale)
        g = grad[t]
        torch.bmm(p.transpose(1, 2), g, out=dv[t])
        dp = torch.bmm(g, v[t].transpose(1, 2))  # (R, N, N)
        ds = torch.ops.aten._softmax_backward_data(dp, p, -1, p.dtype)  # autograd's own softmax backward
        torch.bmm(ds, k[t], out=dq[t])
        torch.bmm(ds.transpose(1, 2), qs, out=dk[t])
    return dq.mul_(scale), dk, dv


@_forward.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, rows: int) -> Tensor:
    return torch.empty_like(q)


@_backward.register_fake
def _(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, rows: int) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:  # noqa: ANN001 - autograd context
    q, k, v, rows = inputs
    ctx.save_for_backward(q, k, v)
    ctx.rows = rows


def _grad(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:  # noqa: ANN001
    q, k, v = ctx.saved_tensors
    return (*_backward(grad, q, k, v, ctx.rows), None)


_forward.register_autograd(_grad, setup_context=_setup_context)


def tiled_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """q, k, v: (B, H, N, d) -> (B, H, N, d); under autocast, in the precisions the plain matmul path would use."""
    B, H, N, d = q.shape
    rows = tile_rows(B * H, N, d)
    if rows >= B * H:
        return (q * d**-0.5 @ k.transpose(-2, -1)).softmax(dim=-1) @ v
    dtype = torch.get_autocast_dtype(q.device.type) if torch.is_autocast_enabled(q.device.type) else q.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = (t.to(dtype).reshape(B * H, N, d) for t in (q, k, v))  # (B, H, N, d) -> (B*H, N, d)
        return _forward(q, k, v, rows).reshape(B, H, N, d)
