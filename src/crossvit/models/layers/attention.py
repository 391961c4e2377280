"""Multi-head self-attention and the CLS-query cross-attention of Eq. 6, both through SDPA.

``impl`` selects how the attention product is computed: ``"sdpa"`` calls
``F.scaled_dot_product_attention`` (the default), ``"math"`` spells out softmax(q k^T / sqrt(d)) v with matmuls,
``"tiled"`` computes the same matmuls a cache-sized tile of (image, head) pairs at a time (CPU training, see
:mod:`.tiled_attention`). All give the same numbers; the math path is visible to FLOP counters and returns the
attention map on request.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tiled_attention import tiled_attention

ATTENTION_IMPLS = ("sdpa", "math", "tiled")


def attend(q: Tensor, k: Tensor, v: Tensor, impl: str, drop: float, keep_map: bool) -> tuple[Tensor, Tensor | None]:
    """q: (B, H, Nq, d), k/v: (B, H, N, d) -> (B, H, Nq, d) and the (B, H, Nq, N) map when asked for."""
    if impl == "sdpa" and not keep_map:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=drop), None
    if impl == "tiled" and not keep_map and not drop:  # dropout would need the probabilities kept for backward
        return tiled_attention(q, k, v), None
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    out = F.dropout(attn, drop) if drop else attn
    return out @ v, (attn.detach() if keep_map else None)


class Attention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, *, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.impl = "sdpa"

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        # (B, N, 3C) -> (3, B, H, N, C/H)
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        x, _ = attend(q, k, v, self.impl, self.attn_drop if self.training else 0.0, False)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))


class CrossAttention(nn.Module):
    """The first token (a CLS token projected into this branch's width) is the only query (Eq. 6).

    Keys and values come from all tokens, the query token included. Set ``keep_map = True`` to keep the last
    attention map in ``self.attn_map`` (B, H, 1, N) for visualisation.
    """

    def __init__(
        self, dim: int, num_heads: int, *, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.impl = "sdpa"
        self.keep_map = False
        self.attn_map: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.impl in ("sdpa", "tiled") and not self.keep_map and not (self.training and self.attn_drop):
            return self._folded(x)
        B, N, C = x.shape
        h = self.num_heads
        q = self.wq(x[:, :1]).reshape(B, 1, h, C // h).transpose(1, 2)  # (B, H, 1, C/H)
        k = self.wk(x).reshape(B, N, h, C // h).transpose(1, 2)  # (B, H, N, C/H)
        v = self.wv(x).reshape(B, N, h, C // h).transpose(1, 2)
        out, self.attn_map = attend(q, k, v, self.impl, self.attn_drop if self.training else 0.0, self.keep_map)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, 1, C)))  # (B, 1, C)

    def _folded(self, x: Tensor) -> Tensor:
        """The same product without projecting every token to keys and values (one query makes it cheap).

        Per head h: q_h . (W_k,h x_n + b_k,h) = (W_k,h^T q_h) . x_n + q_h . b_k,h, and since the weights sum to
        one, sum_n a_n (W_v,h x_n + b_v,h) = W_v,h (sum_n a_n x_n) + b_v,h. Cost per image: 2 C^2 + 2 H N C
        multiply-adds instead of 2 N C^2. FLOP counting uses the "math" path, which keeps the paper's form.
        """
        B, N, C = x.shape
        h = self.num_heads
        d = C // h
        q = self.wq(x[:, 0]).reshape(B, h, d) * d**-0.5  # (B, H, d)
        wk = self.wk.weight.reshape(h, d, C)
        scores = torch.einsum("bhd,hdc->bhc", q, wk)  # (B, H, C): the query folded into the key projection
        scores = torch.bmm(scores, x.transpose(1, 2))  # (B, H, N)
        if self.wk.bias is not None:  # a constant per head: softmax ignores it, kept so that autograd sees b_k
            scores = scores + torch.einsum("bhd,hd->bh", q, self.wk.bias.reshape(h, d)).unsqueeze(-1)
        ctx = torch.bmm(scores.softmax(dim=-1), x)  # (B, H, C): attention-weighted token average per head
        out = torch.einsum("bhc,hdc->bhd", ctx, self.wv.weight.reshape(h, d, C))  # (B, H, d)
        if self.wv.bias is not None:
            out = out + self.wv.bias.reshape(h, d)
        return self.proj_drop(self.proj(out.reshape(B, 1, C)))  # (B, 1, C)
