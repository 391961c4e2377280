"""Pre-norm transformer block, and the cross-attention block (no FFN, residual on the query token only)."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import Attention, CrossAttention
from .drop import DropPath
from .mlp import Mlp


def norm_layer(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class _PreNormAttention(nn.Module):
    """LayerNorm -> attention -> drop-path: the shared body of the transformer block and the two fusion blocks."""

    attn_cls: type[nn.Module] = Attention

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = self.attn_cls(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path = DropPath(drop_path)


class Block(_PreNormAttention):
    """Pre-norm transformer block: ``x + MSA(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, drop_path=drop_path
        )
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class AttentionBlock(_PreNormAttention):
    """Self-attention with residual and no FFN: ``o = y + MSA(LN(y))`` of the all-attention fusion (Eq. 2)."""

    attn_cls = Attention

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.attn(self.norm1(x)))


class CrossAttentionBlock(_PreNormAttention):
    """``y_cls = f(x_cls) + MCA(LN(f(x_cls) || x_patch))`` (Eq. 7). Input (B, 1+N, C), output (B, 1, C)."""

    attn_cls = CrossAttention

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :1] + self.drop_path(self.attn(self.norm1(x)))


def projection(dim_in: int, dim_out: int) -> nn.Sequential:
    """f / g of Eq. 2-7 as released: LayerNorm -> GELU -> Linear (``fusion._proj`` uses it when widths differ)."""
    return nn.Sequential(norm_layer(dim_in), nn.GELU(), nn.Linear(dim_in, dim_out))
