"""The multi-scale feature fusions of Section 3.3 / Table 6, one encoder class per scheme.

Each scheme owns its modules under the names the released weights use -- ``projs`` (f), ``fusion`` (the
attention), ``revert_projs`` (g) -- and its ``fuse`` step. Every scheme reads the branch outputs *before* fusion
(both directions run in parallel, as released). The heuristic schemes mix the branches in the wider branch's width
(``cfg.fusion_dim``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import FUSIONS, CrossViTConfig
from .encoder import MultiScaleEncoder, Tokens
from .layers import AttentionBlock, CrossAttentionBlock, projection


def _proj(dim_in: int, dim_out: int) -> nn.Module:
    # The paper's f / g only align widths: an identity when they already match. Table 7 B (a 384-wide S branch)
    # has 31.4 M params only without them. The released code disabled the identity (`... and False`), but no
    # released model has equal widths, so both agree on every released checkpoint.
    return nn.Identity() if dim_in == dim_out else projection(dim_in, dim_out)


def _block_kwargs(cfg: CrossViTConfig, drop_path: float) -> dict:
    return dict(qkv_bias=cfg.qkv_bias, attn_drop=cfg.attn_drop_rate, proj_drop=cfg.proj_drop_rate, drop_path=drop_path)


class CrossAttentionFusion(MultiScaleEncoder):
    """Eq. 5-7: each branch's CLS, projected into the other branch's width, attends to that branch's patches.

    With ``cfg.cls_token`` False the agent is the mean patch token and its update is added to every token.
    """

    def __init__(self, cfg: CrossViTConfig, drop_path: list[float]) -> None:
        super().__init__(cfg, drop_path)
        d, kw = cfg.embed_dim, _block_kwargs(cfg, drop_path[-1])
        self.projs = nn.ModuleList(_proj(d[i], d[1 - i]) for i in range(2))
        self.fusion = nn.ModuleList()
        for i in range(2):  # branch i's query runs in branch j's width, with j's heads
            blocks = [CrossAttentionBlock(d[1 - i], cfg.num_heads[1 - i], **kw) for _ in range(cfg.cross_depth)]
            # One module sits bare in the released layout (fusion.i.*); several sit in a Sequential (fusion.i.k.*).
            self.fusion.append(blocks[0] if cfg.cross_depth == 1 else nn.Sequential(*blocks))
        self.revert_projs = nn.ModuleList(_proj(d[1 - i], d[i]) for i in range(2))

    def fuse(self, xs: Tokens) -> Tokens:
        outs = []
        for i in range(2):
            own, other = xs[i], xs[1 - i]
            if self.cfg.cls_token:
                agent, other_patches = own[:, :1], other[:, 1:]
            else:
                agent, other_patches = own.mean(dim=1, keepdim=True), other
            y = self.projs[i](agent)  # (B, 1, D_other)
            fusion = self.fusion[i]
            for k, blk in enumerate(fusion if isinstance(fusion, nn.Sequential) else [fusion]):
                if k == 0 or self.cfg.cross_reattend:
                    y = blk(torch.cat((y, other_patches), dim=1))  # (B, 1+N_other, D_other) -> (B, 1, D_other)
                else:  # released stacking: the Sequential feeds the previous module's (B, 1, D) output alone
                    y = blk(y)
            back = self.revert_projs[i](y)  # (B, 1, D_own)
            outs.append(torch.cat((back, own[:, 1:]), dim=1) if self.cfg.cls_token else own + back)
        return outs


class _CommonWidthFusion(MultiScaleEncoder):
    """The heuristic schemes: f projects each branch into ``cfg.fusion_dim``, g projects back."""

    make_proj = staticmethod(_proj)

    def __init__(self, cfg: CrossViTConfig, drop_path: list[float]) -> None:
        super().__init__(cfg, drop_path)
        d, c = cfg.embed_dim, cfg.fusion_dim
        self.projs = nn.ModuleList(self.make_proj(d[i], c) for i in range(2))
        self.build_mixer(cfg, drop_path[-1])
        self.revert_projs = nn.ModuleList(self.make_proj(c, d[i]) for i in range(2))

    def build_mixer(self, cfg: CrossViTConfig, drop_path: float) -> None:
        """Modules between f and g, registered here so the state-dict order stays projs, fusion, revert_projs."""

    def _cls_sum(self, xs: Tokens) -> Tensor:
        return sum(self.projs[j](xs[j][:, :1]) for j in range(2))  # (B, 1, C)


class AllAttentionFusion(_CommonWidthFusion):
    """Eq. 2: every token of both branches, projected to a common width, through one self-attention."""

    # With an identity on the L branch the model would have 26.0 M params and 7.4 GMACs against the paper's
    # 27.7 M / 7.6 G; with f and g on both, 26.9 M / 7.5 G: the paper projects both branches.
    make_proj = staticmethod(projection)

    def build_mixer(self, cfg: CrossViTConfig, drop_path: float) -> None:
        self.fusion = AttentionBlock(cfg.fusion_dim, max(cfg.num_heads), **_block_kwargs(cfg, drop_path))

    def fuse(self, xs: Tokens) -> Tokens:
        ys = [self.projs[i](xs[i]) for i in range(2)]
        o = self.fusion(torch.cat(ys, dim=1))  # (B, N_s + N_l (+2), C)
        parts = o.split([y.shape[1] for y in ys], dim=1)
        return [self.revert_projs[i](parts[i]) for i in range(2)]


class ClassTokenFusion(_CommonWidthFusion):
    """Eq. 3: the projected CLS tokens are summed and sent back to each branch; patches are untouched."""

    def fuse(self, xs: Tokens) -> Tokens:
        s = self._cls_sum(xs)
        return [torch.cat((self.revert_projs[i](s), xs[i][:, 1:]), dim=1) for i in range(2)]


def _resize_tokens(t: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    if src == dst:
        return t
    B, _, C = t.shape
    grid = t.transpose(1, 2).reshape(B, C, *src)  # (B, N, C) -> (B, C, h, w)
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


class PairwiseFusion(_CommonWidthFusion):
    """Eq. 4: CLS tokens fused as in Eq. 3; patch tokens interpolated to a common grid and summed pairwise."""

    def fuse(self, xs: Tokens) -> Tokens:
        s = self._cls_sum(xs)
        grids = self.cfg.grid_size
        patches = [self.projs[j](xs[j][:, 1:]) for j in range(2)]  # each (B, N_j, C)
        outs = []
        for i in range(2):
            mixed = sum(_resize_tokens(patches[j], grids[j], grids[i]) for j in range(2))  # (B, N_i, C)
            outs.append(torch.cat((self.revert_projs[i](s), self.revert_projs[i](mixed)), dim=1))
        return outs


ENCODERS: dict[str, type[MultiScaleEncoder]] = {
    "cross_attn": CrossAttentionFusion,
    "none": MultiScaleEncoder,  # also the single-branch baseline's encoder: its blocks and nothing to fuse
    "all_attn": AllAttentionFusion,
    "cls_token": ClassTokenFusion,
    "pairwise": PairwiseFusion,
}
if tuple(ENCODERS) != FUSIONS:  # a scheme added to the config's list needs its class here, and the reverse
    raise RuntimeError(f"fusion classes {tuple(ENCODERS)} do not match config.FUSIONS {FUSIONS}")


def build_encoder(cfg: CrossViTConfig, drop_path: list[float]) -> MultiScaleEncoder:
    """The multi-scale encoder of ``cfg.fusion``, block slot i with drop-path rate ``drop_path[i]``."""
    return ENCODERS[cfg.fusion](cfg, drop_path)
