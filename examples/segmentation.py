"""Semantic segmentation on the CrossViT backbone: both branches' maps, fused at the S-branch grid, upsampled.

python -m examples.segmentation          # trains a tiny model on synthetic shapes, prints the losses
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import crossvit
from crossvit import CrossViTConfig

from .shapes import CLASSES, make_shapes


class SegmentationHead(nn.Module):
    """Each map -> 1x1 conv to ``width``, resized to the finest grid, summed; 3x3 conv; logits at image size."""

    def __init__(self, channels: list[int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, maps: list[Tensor], size: tuple[int, int]) -> Tensor:
        grid = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])  # the finest map's (h, w)
        y = sum(F.interpolate(lat(m), size=grid, mode="bilinear", align_corners=False)
                for lat, m in zip(self.lateral, maps))  # (B, width, h, w)  # fmt: skip
        logits = self.classifier(self.fuse(y))  # (B, classes, h, w)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)  # (B, classes, H, W)


class Segmenter(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = SegmentationHead(backbone.feature_info.channels(), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x), x.shape[-2:])


TINY = CrossViTConfig(
    img_size=(64, 64), img_scale=(1.0, 1.0), patch_size=(8, 16), embed_dim=(32, 64), num_heads=(2, 2),
    mlp_ratio=(2.0, 2.0), num_encoders=2, large_depth=1, num_classes=0,
)  # fmt: skip


def train(steps: int = 40, batch_size: int = 8, lr: float = 2e-3, seed: int = 0) -> list[float]:
    """Train a tiny segmenter on synthetic shapes; returns the loss of every step."""
    torch.manual_seed(seed)
    data = make_shapes(64, size=TINY.img_size[0], seed=seed)
    model = Segmenter(crossvit.create_model(TINY, features_only=True, out_indices=(-1,)), len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in range(steps):
        batch = [data[(step * batch_size + i) % len(data)] for i in range(batch_size)]
        x = torch.stack([b["image"] for b in batch])  # (B, 3, H, W)
        y = torch.stack([b["mask"] for b in batch])  # (B, H, W)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    losses = train()
    print(f"segmentation: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
