"""Layer-wise learning-rate decay (BEiT; timm's ``param_groups_layer_decay``) through both CrossViT branches.

Depth ids: 0 for the stem (patch embeddings, position embeddings, CLS tokens of both branches), k + 1 for the
k-th multi-scale encoder (both branches' blocks and the encoder's fusion modules), K + 1 for the final norms and
the heads. A parameter at depth d trains at lr x decay^(K + 1 - d): the heads at the full rate, the stem slowest.
Each depth is split by the usual weight-decay rule (biases, norms and, with ``decay_tokens`` False, pos-embeds and
CLS tokens are not decayed).
"""

from __future__ import annotations

import logging
import re

from torch import nn

log = logging.getLogger("crossvit")
_ENCODER = re.compile(r"^blocks\.(\d+)\.")


def layer_id(name: str, num_encoders: int) -> int:
    """Depth of parameter ``name``: 0 stem, 1..K encoders, K + 1 final norms and heads."""
    if name.startswith(("patch_embed.", "pos_embed.", "cls_token.")):
        return 0
    m = _ENCODER.match(name)
    if m:
        return int(m.group(1)) + 1
    return num_encoders + 1


def layer_decay_groups(
    model: nn.Module, weight_decay: float, layer_decay: float, decay_tokens: bool = True
) -> list[dict]:
    """Optimizer groups with ``lr_scale`` (multiplied into the scheduled lr) and ``weight_decay`` per group."""
    K = model.cfg.num_encoders
    skip = set(model.no_weight_decay()) if not decay_tokens else set()
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, K)
        no_decay = p.ndim <= 1 or name.endswith(".bias") or name in skip
        g = groups.setdefault(
            (lid, no_decay),
            {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": layer_decay ** (K + 1 - lid),
                "layer_id": lid,
            },
        )
        g["params"].append(p)
        g["names"].append(name)
    out = [groups[k] for k in sorted(groups)]
    for g in out:
        log.debug(
            "layer-decay group: depth %d lr x %.4f weight_decay %g, %d tensors (%s%s)",
            g["layer_id"],
            g["lr_scale"],
            g["weight_decay"],
            len(g["names"]),
            ", ".join(g["names"][:4]),
            ", ..." if len(g["names"]) > 4 else "",
        )
    for g in out:  # torch optimizers keep extra keys; the names are for the log only
        del g["names"]
    return out
