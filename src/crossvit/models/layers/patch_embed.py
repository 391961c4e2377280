"""Patch embedding: a linear projection of non-overlapping patches, or the three-convolution "dagger" stem."""

from __future__ import annotations

from torch import Tensor, nn


def _dagger_stem(in_chans: int, dim: int, patch: int) -> nn.Sequential:
    # Conv7/s4 then two 3x3 convs whose strides multiply to patch/4; no norm and no final activation, as released.
    if patch == 12:
        second, third = dict(stride=3, padding=0), dict(stride=1, padding=1)
    elif patch == 16:
        second, third = dict(stride=2, padding=1), dict(stride=2, padding=1)
    else:
        raise ValueError(f"multi_conv patch embedding is defined for patch 12 and 16, got {patch}")
    return nn.Sequential(
        nn.Conv2d(in_chans, dim // 4, kernel_size=7, stride=4, padding=3),
        nn.ReLU(inplace=True),
        nn.Conv2d(dim // 4, dim // 2, kernel_size=3, **second),
        nn.ReLU(inplace=True),
        nn.Conv2d(dim // 2, dim, kernel_size=3, **third),
    )


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int, multi_conv: bool = False) -> None:
        super().__init__()
        self.patch = patch
        self.proj = _dagger_stem(in_chans, dim, patch) if multi_conv else nn.Conv2d(in_chans, dim, patch, patch)

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, D, H/p, W/p) -> (B, H/p * W/p, D)
        return self.proj(x).flatten(2).transpose(1, 2)
