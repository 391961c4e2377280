"""The multi-scale feature fusions of Section 3.3 / Table 6, each a function of one encoder's branch outputs.

Every scheme reads the branch outputs *before* fusion (both directions run in parallel, as released) and keeps
the modules under the names the released weights use: ``projs`` (f), ``fusion`` (the attention), ``revert_projs``
(g). The heuristic schemes mix the branches in the wider branch's width (``cfg.fusion_dim``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import CrossViTConfig
from .layers import AttentionBlock, CrossAttentionBlock, projection


def _proj(dim_in: int, dim_out: int) -> nn.Module:
    # The paper's f / g only align widths: an identity when they already match. Table 7 B (a 384-wide S branch)
    # has 31.4 M params only without them. The released code disabled the identity (`... and False`), but no
    # released model has equal widths, so both agree on every released checkpoint.
    return nn.Identity() if dim_in == dim_out else projection(dim_in, dim_out)


Tokens = list[Tensor]


def build_fusion(
    cfg: CrossViTConfig, drop_path: float
) -> tuple[nn.ModuleList | None, nn.Module | None, nn.ModuleList | None]:
    """Return (projs, fusion, revert_projs) for ``cfg.fusion``; unused parts are None."""
    d = cfg.embed_dim
    kw = dict(qkv_bias=cfg.qkv_bias, proj_drop=cfg.proj_drop_rate, attn_drop=cfg.attn_drop_rate, drop_path=drop_path)
    if cfg.fusion == "none":
        return None, None, None
    if cfg.fusion == "cross_attn":
        # Branch i's CLS is projected into branch j's width and attends to branch j's patches, with j's heads.
        projs = nn.ModuleList(_proj(d[i], d[1 - i]) for i in range(2))
        fusion = nn.ModuleList()
        for i in range(2):
            blocks = [CrossAttentionBlock(d[1 - i], cfg.num_heads[1 - i], **kw) for _ in range(cfg.cross_depth)]
            # One module sits bare in the released layout (fusion.i.*); several sit in a Sequential (fusion.i.k.*).
            fusion.append(blocks[0] if cfg.cross_depth == 1 else nn.Sequential(*blocks))
        reverts = nn.ModuleList(_proj(d[1 - i], d[i]) for i in range(2))
        return projs, fusion, reverts
    c = cfg.fusion_dim
    # All-attention (Eq. 2) projects both branches: with an identity on the L branch it would have 26.0 M params
    # and 7.4 GMACs against the paper's 27.7 M / 7.6 G; with f and g on both, 26.9 M / 7.5 G.
    make = projection if cfg.fusion == "all_attn" else _proj
    projs = nn.ModuleList(make(d[i], c) for i in range(2))
    reverts = nn.ModuleList(make(c, d[i]) for i in range(2))
    fusion = AttentionBlock(c, max(cfg.num_heads), **kw) if cfg.fusion == "all_attn" else None
    return projs, fusion, reverts


def _ca_blocks(module: nn.Module) -> list[nn.Module]:
    return list(module) if isinstance(module, nn.Sequential) else [module]


def cross_attention(enc: nn.Module, xs: Tokens, cfg: CrossViTConfig) -> Tokens:
    """Eq. 5-7. With ``cfg.cls_token`` False the agent is the mean patch token and its update is added to all."""
    outs = []
    for i in range(2):
        own, other = xs[i], xs[1 - i]
        if cfg.cls_token:
            agent, other_patches = own[:, :1], other[:, 1:]
        else:
            agent, other_patches = own.mean(dim=1, keepdim=True), other
        y = enc.projs[i](agent)  # (B, 1, D_other)
        for k, blk in enumerate(_ca_blocks(enc.fusion[i])):
            if k == 0 or cfg.cross_reattend:
                y = blk(torch.cat((y, other_patches), dim=1))  # (B, 1+N_other, D_other) -> (B, 1, D_other)
            else:  # released stacking: the Sequential feeds the previous module's (B, 1, D) output alone
                y = blk(y)
        back = enc.revert_projs[i](y)  # (B, 1, D_own)
        outs.append(torch.cat((back, own[:, 1:]), dim=1) if cfg.cls_token else own + back)
    return outs


def no_fusion(enc: nn.Module, xs: Tokens, cfg: CrossViTConfig) -> Tokens:
    return list(xs)


def all_attention(enc: nn.Module, xs: Tokens, cfg: CrossViTConfig) -> Tokens:
    """Eq. 2: every token of both branches, projected to a common width, through one self-attention."""
    ys = [enc.projs[i](xs[i]) for i in range(2)]
    o = enc.fusion(torch.cat(ys, dim=1))  # (B, N_s + N_l (+2), C)
    parts = o.split([y.shape[1] for y in ys], dim=1)
    return [enc.revert_projs[i](parts[i]) for i in range(2)]


def _cls_sum(enc: nn.Module, xs: Tokens) -> Tensor:
    return sum(enc.projs[j](xs[j][:, :1]) for j in range(2))  # (B, 1, C)


def class_token(enc: nn.Module, xs: Tokens, cfg: CrossViTConfig) -> Tokens:
    """Eq. 3: the projected CLS tokens are summed and sent back to each branch; patches are untouched."""
    s = _cls_sum(enc, xs)
    return [torch.cat((enc.revert_projs[i](s), xs[i][:, 1:]), dim=1) for i in range(2)]


def _resize_tokens(t: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    if src == dst:
        return t
    B, _, C = t.shape
    grid = t.transpose(1, 2).reshape(B, C, *src)  # (B, N, C) -> (B, C, h, w)
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def pairwise(enc: nn.Module, xs: Tokens, cfg: CrossViTConfig) -> Tokens:
    """Eq. 4: CLS tokens fused as in Eq. 3; patch tokens interpolated to a common grid and summed pairwise."""
    s = _cls_sum(enc, xs)
    grids = cfg.grid_size
    patches = [enc.projs[j](xs[j][:, 1:]) for j in range(2)]  # each (B, N_j, C)
    outs = []
    for i in range(2):
        mixed = sum(_resize_tokens(patches[j], grids[j], grids[i]) for j in range(2))  # (B, N_i, C)
        outs.append(torch.cat((enc.revert_projs[i](s), enc.revert_projs[i](mixed)), dim=1))
    return outs


FUSE: dict[str, Callable[[nn.Module, Tokens, CrossViTConfig], Tokens]] = {
    "cross_attn": cross_attention,
    "none": no_fusion,
    "all_attn": all_attention,
    "cls_token": class_token,
    "pairwise": pairwise,
}
