"""Object detection: torchvision's Faster R-CNN on the CrossViT backbone through torchvision's FPN.

    python -m examples.detection             # trains a tiny model on synthetic shapes, prints the losses

Two things differ from a CNN backbone. The images must reach the backbone at the size the model was built for,
so the detector's transform resizes to exactly that size (``fixed_size``) and pads nothing (``size_divisible=1``).
CrossViT's strides are not powers of two (12 and 16 * 240 / 224 for the released models), and torchvision's
MultiScaleRoIAlign rounds every level's scale to one, so boxes are pooled here with ``roi_align`` at the finest
level's exact scale instead.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

import crossvit
from crossvit import CrossViTConfig

from .shapes import CLASSES, make_shapes


class CrossViTFPN(nn.Module):
    """Backbone maps -> FPN levels "0", "1", ... (+ "pool"); ``out_channels`` as torchvision's detectors expect."""

    def __init__(self, backbone: nn.Module, out_channels: int = 64) -> None:
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(backbone.feature_info.channels(), out_channels, LastLevelMaxPool())
        self.out_channels = out_channels
        self.reductions = backbone.feature_info.reduction()

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        maps = self.body(x)  # finest first: [(B, D_s, h_s, w_s), (B, D_l, h_l, w_l)]
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))  # each (B, out_channels, h_i, w_i)


class ExactScaleRoIAlign(MultiScaleRoIAlign):
    """RoIAlign of one FPN level at its true scale (1 / reduction); FasterRCNN accepts only this class's kind."""

    def __init__(self, level: str, reduction: float, output_size: int = 7) -> None:
        super().__init__([level], output_size, sampling_ratio=2)
        self.level, self.scale, self.output_size = level, 1.0 / reduction, output_size

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes) -> Tensor:
        out = roi_align(features[self.level], proposals, self.output_size, self.scale, sampling_ratio=2, aligned=True)
        return out  # (sum of boxes, C, output_size, output_size)


def build_detector(cfg: CrossViTConfig, num_classes: int, width: int = 64, **backbone_kw) -> FasterRCNN:
    """Faster R-CNN with a CrossViT + FPN backbone; ``num_classes`` counts the background."""
    backbone = CrossViTFPN(crossvit.create_model(cfg, features_only=True, out_indices=(-1,), **backbone_kw), width)
    levels = len(backbone.reductions) + 1  # + LastLevelMaxPool
    h, w = backbone.body.cfg.img_size
    anchors = AnchorGenerator(
        sizes=tuple((int(r * 2),) for r in backbone.reductions) + ((int(backbone.reductions[-1] * 4),),),
        aspect_ratios=((0.5, 1.0, 2.0),) * levels,
    )
    dc = crossvit.data_config(backbone.body.model)
    return FasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        box_roi_pool=ExactScaleRoIAlign("0", backbone.reductions[0]),
        box_head=TwoMLPHead(width * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        min_size=min(h, w),
        max_size=max(h, w),
        fixed_size=(h, w),
        size_divisible=1,
        image_mean=list(dc["mean"]),
        image_std=list(dc["std"]),
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=64,
    )


TINY = CrossViTConfig(
    img_size=(64, 64), img_scale=(1.0, 1.0), patch_size=(8, 16), embed_dim=(32, 64), num_heads=(2, 2),
    mlp_ratio=(2.0, 2.0), num_encoders=2, large_depth=1, num_classes=0,
)  # fmt: skip


def train(steps: int = 30, batch_size: int = 4, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Train a tiny detector on synthetic shapes; returns the summed loss of every step."""
    torch.manual_seed(seed)
    data = make_shapes(32, size=TINY.img_size[0], seed=seed)
    model = build_detector(TINY, len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in range(steps):
        batch = [data[(step * batch_size + i) % len(data)] for i in range(batch_size)]
        images = [b["image"] for b in batch]
        targets = [{"boxes": b["boxes"], "labels": b["labels"]} for b in batch]
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    losses = train()
    print(f"detection: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
