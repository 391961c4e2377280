"""One multi-scale transformer encoder: N / M transformer blocks per branch, then the fusion of the branches.

The fusion schemes (``crossvit.models.fusion``) are subclasses that own the fusion's modules and its ``fuse`` step. They
extend the encoder instead of sitting inside it as a child because the released layout keeps the fusion's modules
beside the branch blocks (``blocks.k.projs``, ``blocks.k.fusion``, ``blocks.k.revert_projs``): a nested module would
rename every key and no released weight file would load.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import CrossViTConfig
from .layers import Block

Tokens = list[Tensor]


def branch_blocks(cfg: CrossViTConfig, b: int, depth: int, drop_path: list[float]) -> nn.Sequential:
    """``depth`` transformer blocks of branch ``b`` (0 = S, 1 = L), block i with drop-path rate ``drop_path[i]``."""
    return nn.Sequential(
        *[
            Block(
                dim=cfg.embed_dim[b],
                num_heads=cfg.num_heads[b],
                mlp_ratio=cfg.mlp_ratio[b],
                qkv_bias=cfg.qkv_bias,
                attn_drop=cfg.attn_drop_rate,
                proj_drop=cfg.proj_drop_rate,
                drop_path=drop_path[i],
            )
            for i in range(depth)
        ]
    )


def run_blocks(blocks: nn.Sequential, x: Tensor, grad_checkpointing: bool) -> Tensor:
    """The blocks in order; with ``grad_checkpointing`` (and autograd on) each recomputes its activations."""
    for blk in blocks:
        x = checkpoint(blk, x, use_reentrant=False) if grad_checkpointing and torch.is_grad_enabled() else blk(x)
    return x


class MultiScaleEncoder(nn.Module):
    """The blocks of every branch the config runs (``cfg.branches``), then ``fuse``; this base fuses nothing."""

    def __init__(self, cfg: CrossViTConfig, drop_path: list[float]) -> None:
        super().__init__()
        self.cfg = cfg
        depths = (cfg.small_depth, cfg.large_depth)
        self.blocks = nn.ModuleList(branch_blocks(cfg, b, depths[b], drop_path) for b in cfg.branches)
        self.grad_checkpointing = False

    def fuse(self, xs: Tokens) -> Tokens:
        return list(xs)

    def forward(self, xs: Tokens) -> Tokens:
        outs = [run_blocks(branch, x, self.grad_checkpointing) for x, branch in zip(xs, self.blocks)]
        return self.fuse(outs)
