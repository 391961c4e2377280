"""A convolutional tokenizer for small images, shared by both branches (the dagger models' idea at 32 px).

Each stage is ``depth`` x (conv3x3 -> BatchNorm -> ReLU), then a 2x2 max-pool, so ``len(dims)`` stages shrink the
image by ``2 ** len(dims)``. Both branches then cut *this* feature map into patches of their own size: the S branch into
small patches (many tokens), the L branch into large ones (few tokens). Running the stem once instead of once per
branch halves its cost; on a CPU the stem's convolutions are also far cheaper per useful feature than extra
attention blocks, which is what makes a CrossViT trainable on CIFAR-10 in minutes.
"""

from __future__ import annotations

from torch import Tensor, nn


class ConvStem(nn.Module):
    def __init__(self, in_chans: int, dims: tuple[int, ...], depths: tuple[int, ...] = ()) -> None:
        super().__init__()
        depths = depths or (1,) * len(dims)
        if len(depths) != len(dims) or min(depths) < 1:
            raise ValueError(f"stem_depths {depths}: one count >= 1 per stem stage {dims}")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c, depth in zip(dims, depths):
            for _ in range(depth):
                layers += [nn.Conv2d(c_in, c, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
                c_in = c
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.stages = nn.Sequential(*layers)
        self.out_chans = c_in
        self.stride = 2 ** len(dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x)  # (B, C, H, W) -> (B, dims[-1], H / stride, W / stride)
