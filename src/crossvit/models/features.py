"""CrossViT as a backbone: NCHW feature maps of both branches after chosen encoders, timm's features API.

    backbone = crossvit.create_model("crossvit_15_240", pretrained=True, features_only=True, out_indices=(-1,))
    maps = backbone(x)                       # [(B, 192, 20, 20), (B, 384, 14, 14)]
    backbone.feature_info.channels()         # [192, 384]; .reduction() [12, 17.142857142857142]

Maps are ordered by stride as timm's backbones are (and as FPNs expect): the S-branch map of every chosen encoder,
then the L-branch maps. CLS tokens are dropped. ``feature_info`` is timm's own :class:`FeatureInfo` holding one
entry per (branch, encoder); ``reduction`` is input height / grid height, which is not an integer for the L branch
fed a 224/240 resize (16 * 240 / 224).
"""

from __future__ import annotations

from timm.models import FeatureInfo
from torch import Tensor, nn

from .model import CrossViT


def _resolve_indices(out_indices: int | tuple[int, ...] | list[int] | None, num_encoders: int) -> list[int]:
    """Encoder indices, negative ones counted from the end; an int n means the last n encoders (as timm's)."""
    if out_indices is None:
        return list(range(num_encoders))
    if isinstance(out_indices, int):
        if not 1 <= out_indices <= num_encoders:
            raise ValueError(f"out_indices={out_indices}: the model has {num_encoders} encoders")
        return list(range(num_encoders - out_indices, num_encoders))
    idx = []
    for i in out_indices:
        if not -num_encoders <= i < num_encoders:
            raise ValueError(f"out_indices: {i} is out of range for a model with {num_encoders} encoders")
        idx.append(i % num_encoders)
    if not idx or len(set(idx)) != len(idx):
        raise ValueError(f"out_indices must name distinct encoders, got {tuple(out_indices)}")
    return sorted(idx)


def _reduction(img: int, grid: int) -> int | float:
    r = img / grid
    return int(r) if r.is_integer() else r


class CrossViTFeatures(nn.Module):
    """The encoders of a CrossViT up to the last chosen one; forward gives the chosen NCHW maps."""

    def __init__(self, model: CrossViT, out_indices: int | tuple[int, ...] | list[int] | None = None) -> None:
        super().__init__()
        cfg = model.cfg
        K = len(model.blocks)
        self.indices = _resolve_indices(out_indices, K)
        grids = model.branch_grids
        branches = len(grids)
        # order branches by stride so that feature_info's reductions never decrease (timm checks it)
        reds = [_reduction(cfg.img_size[0], g[0]) for g in grids]
        self.branch_order = sorted(range(branches), key=lambda b: reds[b])
        info = [
            {"num_chs": cfg.embed_dim[-1] if cfg.single_branch else cfg.embed_dim[b], "reduction": reds[b],
             "module": f"blocks.{k}", "branch": b, "encoder": k}
            for b in self.branch_order
            for k in range(K)
        ]  # fmt: skip
        pos = [j * K + k for j in range(branches) for k in self.indices]
        self.feature_info = FeatureInfo(info, tuple(pos))
        # the classifier's parts that no chosen map depends on go: head, final norms, later encoders
        model.reset_classifier(0)
        model.norm = nn.ModuleList(nn.Identity() for _ in model.norm)
        model.blocks = model.blocks[: self.indices[-1] + 1]
        self.model = model
        self.pretrained_cfg = getattr(model, "pretrained_cfg", None)

    @property
    def cfg(self):
        return self.model.cfg

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, H, W) -> [(B, D_s, h_s, w_s) per chosen encoder..., (B, D_l, h_l, w_l) per chosen encoder...]."""
        inter = self.model.forward_intermediates(x, indices=self.indices, output_fmt="NCHW", intermediates_only=True)
        return [inter[j][b] for b in self.branch_order for j in range(len(self.indices))]


__all__ = ["CrossViTFeatures"]
