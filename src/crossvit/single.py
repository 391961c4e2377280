"""The single-branch baseline of Table 2: CrossViT's L branch alone, i.e. a DeiT/ViT of the same width and depth.

    cfg = crossvit.get_entry("crossvit_15_240").cfg.replace(single_branch=True, fusion="none")
    model = crossvit.create_model(cfg)      # K * M blocks of the L branch, one CLS token, one head

It is a :class:`CrossViT` with one branch, so every tool (training, validation, info, export) takes it as it is.
The L branch still sees the image resized by ``img_scale[1]``, so both models are fed identical inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import CrossViTConfig
from .layers import PatchEmbed, norm_layer
from .model import CrossViT, Tokens, _init_weights, branch_blocks, conv_stem, run_blocks

BRANCH = 1  # the L branch


class SingleEncoder(nn.Module):
    """M blocks of the L branch; takes and returns a one-element token list like a multi-scale encoder."""

    def __init__(self, cfg: CrossViTConfig, drop_path: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([branch_blocks(cfg, BRANCH, cfg.large_depth, drop_path)])
        self.grad_checkpointing = False

    def forward(self, xs: Tokens) -> Tokens:
        return [run_blocks(self.blocks[0], xs[0], self.grad_checkpointing)]


class SingleBranchViT(CrossViT):
    """One branch of a CrossViT config (branch 1, the L branch). Keys: ``patch_embed.0``, ``pos_embed.0``, ..."""

    def __init__(self, cfg: CrossViTConfig) -> None:
        if not cfg.single_branch:
            raise ValueError("SingleBranchViT needs a config with single_branch=True")
        nn.Module.__init__(self)
        b = BRANCH
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.embed_dim[b]
        self.global_pool = cfg.global_pool if cfg.cls_token else "avg"
        d = cfg.embed_dim[b]
        self.stem, embed_in = conv_stem(cfg)
        self.patch_embed = nn.ModuleList(
            [PatchEmbed(cfg.patch_size[b] // cfg.stem_stride, embed_in, d, cfg.multi_conv)]
        )
        if cfg.cls_token:
            self.cls_token = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, d))])
        self.pos_embed = nn.ParameterList([nn.Parameter(torch.zeros(1, cfg.num_prefix_tokens + cfg.num_patches[b], d))])
        self.pos_drop = nn.Dropout(cfg.pos_drop_rate)
        self.blocks = nn.ModuleList(SingleEncoder(cfg, dpr) for dpr in cfg.drop_path_rates())
        self.norm = nn.ModuleList([norm_layer(d)])
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = self._make_heads(cfg.num_classes)
        self.reset_parameters()

    def _make_heads(self, num_classes: int) -> nn.ModuleList:
        d = self.cfg.embed_dim[BRANCH]
        return nn.ModuleList([nn.Linear(d, num_classes) if num_classes > 0 else nn.Identity()])

    def reset_parameters(self) -> None:
        for p in list(self.pos_embed) + (list(self.cls_token) if self.cfg.cls_token else []):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init_weights)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed.0"} | ({"cls_token.0"} if self.cfg.cls_token else set())

    @property
    def branch_grids(self) -> list[tuple[int, int]]:
        return [self.cfg.grid_size[BRANCH]]

    def _embed(self, x: Tensor) -> Tokens:
        if self.stem is not None:
            x = self.stem(x)  # (B, C, H, W) -> (B, C_stem, H / s, W / s)
            return [self._embed_branch(x, 0, tuple(x.shape[-2:]))]
        return [self._embed_branch(x, 0, self._branch_sizes(x)[BRANCH])]

    def extra_repr(self) -> str:
        c = self.cfg
        depth = c.num_encoders * c.large_depth
        return f"single branch: img_size={c.img_size}, patch={c.patch_size[1]}, dim={c.embed_dim[1]}, depth={depth}"


def build_model(cfg: CrossViTConfig) -> CrossViT:
    """The model a config describes: a two-branch CrossViT, or the single-branch baseline."""
    return SingleBranchViT(cfg) if cfg.single_branch else CrossViT(cfg)
