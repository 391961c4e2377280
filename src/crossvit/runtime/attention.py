"""``crossvit attention``: what each branch's CLS token attends to in the other branch, drawn on the image.

    crossvit attention cat.jpg --checkpoint runs/demo/release --out attn/
    # -> attn/cat_branch0.png  S-branch CLS over L-branch patches: one row per cross-attention module,
    #                          head mean then each head
    #    attn/cat_branch1.png  L-branch CLS over S-branch patches
    #    attn/cat_summary.png  both branches: head mean at every encoder + the rollout
    #    attn/cat_maps.npz     the raw maps

Every ``CrossAttention`` keeps its (B, H, 1, 1 + N_other) map when ``keep_map`` is set; index 0 is the query
(CLS) token itself, 1: the other branch's patches on its grid. The rollout (docs/attention.md) follows the CLS
token through the cross-attention modules in order, with the block's residual counted as half the weight
(Abnar & Zuidema, 2020): ``r <- (1/2 + a_0/2) r + a_patches/2``. It assumes a patch token keeps its position's
identity across encoders (self-attention mixing inside the other branch is not followed), so it says where the CLS
token gathered information from, not which pixels caused the prediction. Models without CLS tokens use the mean
token as the agent and are drawn the same way; fusions other than cross-attention have no maps (clear error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.hub import data_config, eval_transform
from ..models.layers import CrossAttention
from ..models.model import CrossViT

BRANCH_NAMES = ("S", "L")


@dataclass
class CrossMap:
    """One cross-attention module's map for one image: the query of ``branch`` over branch ``1 - branch``."""

    encoder: int
    module: int  # index of the module inside the encoder (cross_depth > 1)
    branch: int
    patches: np.ndarray  # (H, h, w) attention weight on each patch of the other branch, per head
    self_weight: np.ndarray  # (H,) weight on the query token itself (index 0 of the map)

    @property
    def mean(self) -> np.ndarray:
        return self.patches.mean(axis=0)  # (h, w) head average


def cross_attention_maps(model: CrossViT, x: Tensor) -> tuple[list[CrossMap], Tensor]:
    """Run ``model`` once on ``x`` (1, C, H, W) with maps kept; returns the maps and the (1, classes) logits.

    Modules whose map has no patches (the released stacking of cross_depth > 1, where later modules see only the
    running CLS token) are left out: they attend to the query alone.
    """
    if model.cfg.fusion != "cross_attn":
        raise ValueError(
            f"the model fuses its branches with fusion={model.cfg.fusion!r}, which has no cross-attention maps; "
            "`crossvit attention` needs a cross_attn model"
        )
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, C, H, W) tensor, got shape {tuple(x.shape)}")
    order: list[tuple[int, int, int, CrossAttention]] = []
    for k, enc in enumerate(model.blocks):
        for i in range(2):
            mods = [m for m in enc.fusion[i].modules() if isinstance(m, CrossAttention)]
            order += [(k, i, j, m) for j, m in enumerate(mods)]
    grids = model.cfg.grid_size
    was_training = model.training
    model.eval()
    try:
        for *_, m in order:
            m.keep_map = True
        with torch.no_grad():
            logits = model(x)
        maps = []
        for k, i, j, m in order:
            a = m.attn_map[0, :, 0].float().cpu().numpy()  # (B, H, 1, 1+N) -> (H, 1+N)
            if a.shape[-1] == 1:
                continue
            h, w = grids[1 - i]
            maps.append(CrossMap(k, j, i, a[:, 1:].reshape(-1, h, w), a[:, 0]))
    finally:
        for *_, m in order:
            m.keep_map, m.attn_map = False, None
        model.train(was_training)
    return maps, logits


def rollout(maps: list[CrossMap], branch: int) -> tuple[np.ndarray, float]:
    """Where ``branch``'s CLS token gathered information from, over all its cross-attention modules in order.

    Returns (h, w) weights on the other branch's patches and the weight left on the initial CLS token; they sum to
    1. Each module contributes half of its head-averaged patch weights; the other half (the residual) and the
    weight on the query itself carry the earlier provenance forward.
    """
    own = [m for m in maps if m.branch == branch]
    if not own:
        raise ValueError(f"no cross-attention maps of branch {branch}")
    r = np.zeros_like(own[0].mean, dtype=np.float64)
    r_self = 1.0
    for m in own:
        a0 = float(m.self_weight.mean())
        keep = 0.5 + 0.5 * a0
        r = keep * r + 0.5 * m.mean
        r_self *= keep
    return r, r_self


def _overlay(ax, img: np.ndarray, heat: np.ndarray, title: str, cmap: str) -> None:
    """``heat`` stretched from its min (dark) to its max (bright) over the image, one patch per cell.

    The title gets the peak as a multiple of the uniform weight, so a flat map (random weights) reads as flat.
    """
    hgt, wid = img.shape[:2]
    lo, hi = float(heat.min()), float(heat.max())
    uniform = float(heat.sum()) / heat.size
    ax.imshow(img, extent=(0, wid, hgt, 0))
    norm = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    ax.imshow(norm, extent=(0, wid, hgt, 0), cmap=cmap, alpha=0.55, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"{title}, max {hi / uniform:.1f}x unif." if uniform > 0 else title, fontsize=7)
    ax.set_axis_off()


def _query_name(model: CrossViT, branch: int) -> str:
    return f"{BRANCH_NAMES[branch]}-branch {'CLS' if model.cfg.cls_token else 'agent (mean token)'}"


def draw_branch(
    model: CrossViT,
    maps: list[CrossMap],
    branch: int,
    img: np.ndarray,
    out: Path,
    cmap: str = "inferno",
    dpi: int = 100,
) -> Path:
    """One row per cross-attention module of ``branch``: head mean, then each head."""
    import matplotlib  # loaded on first use (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loaded on first use (slow import)

    own = [m for m in maps if m.branch == branch]
    heads = own[0].patches.shape[0]
    fig, axes = plt.subplots(len(own), heads + 1, figsize=(2.1 * (heads + 1), 2.3 * len(own)), squeeze=False)
    other = BRANCH_NAMES[1 - branch]
    for row, m in zip(axes, own):
        where = f"enc {m.encoder}" + (f" mod {m.module}" if model.cfg.cross_depth > 1 else "")
        _overlay(row[0], img, m.mean, f"{where}: head mean\n(self {m.self_weight.mean():.2f})", cmap)
        for h in range(heads):
            _overlay(row[h + 1], img, m.patches[h], f"{where}: head {h}\n(self {m.self_weight[h]:.2f})", cmap)
    fig.suptitle(f"{_query_name(model, branch)} -> {other}-branch patches (each panel min to max)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def draw_summary(
    model: CrossViT,
    maps: list[CrossMap],
    img: np.ndarray,
    out: Path,
    cmap: str = "inferno",
    title: str = "",
    dpi: int = 100,
) -> Path:
    """Both branches: the image, the head mean at every module, and the rollout."""
    import matplotlib  # loaded on first use (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loaded on first use (slow import)

    per = [[m for m in maps if m.branch == b] for b in range(2)]
    cols = 2 + max(len(p) for p in per)
    fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 5.3), squeeze=False)
    for b, row in enumerate(axes):
        row[0].imshow(img)
        row[0].set_title(f"{_query_name(model, b)}\nattends to {BRANCH_NAMES[1 - b]} patches", fontsize=8)
        row[0].set_axis_off()
        for c, m in enumerate(per[b]):
            where = f"enc {m.encoder}" + (f" mod {m.module}" if model.cfg.cross_depth > 1 else "")
            _overlay(row[1 + c], img, m.mean, f"{where}\n(self {m.self_weight.mean():.2f})", cmap)
        for c in range(1 + len(per[b]), cols - 1):
            row[c].set_axis_off()
        r, r_self = rollout(maps, b)
        _overlay(row[-1], img, r, f"rollout\n(patches {1 - r_self:.2f}, init CLS {r_self:.2f})", cmap)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def display_image(model: CrossViT, pil) -> np.ndarray:
    """The crop the model sees (same crop_pct), at >= 224 px for legible overlays; (H, W, 3) floats in [0, 1]."""

    h, w = model.cfg.img_size
    tf = eval_transform(model, img_size=max(224, h)) if h == w else eval_transform(model)
    dc = data_config(model)
    x = tf(pil)  # (3, H, W) normalized
    mean, std = torch.tensor(dc["mean"]).view(3, 1, 1), torch.tensor(dc["std"]).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
