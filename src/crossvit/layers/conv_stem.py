"""A convolutional tokenizer for small images, shared by both branches (the dagger models' idea at 32 px).

Each stage is conv3x3 -> BatchNorm -> ReLU -> overlapping 3x3/2 max-pool, so ``len(dims)`` stages shrink the image
by ``2 ** len(dims)``. Both branches then cut *this* feature map into patches of their own size: the S branch into
small patches (many tokens), the L branch into large ones (few tokens). Running the stem once instead of once per
branch halves its cost; on a CPU the stem's convolutions are also far cheaper per useful feature than extra
attention blocks, which is what makes a CrossViT trainable on CIFAR-10 in minutes.
"""

from __future__ import annotations

from torch import Tensor, nn


class ConvStem(nn.Module):
    def __init__(self, in_chans: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for c in dims:
            layers += [
                nn.Conv2d(c_in, c, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2),
            ]
            c_in = c
        self.stages = nn.Sequential(*layers)
        self.out_chans = c_in
        self.stride = 2 ** len(dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x)  # (B, C, H, W) -> (B, dims[-1], H / stride, W / stride)
