"""Which weights train: ``--freeze`` of named parts, ``--linear-probe`` (heads only), and the table shown at start.

Parts (by parameter name in the released layout):
    patch_embed   patch_embed.*, pos_embed.*, cls_token.* of both branches (the stem)
    branch0/1     that branch's stem, its blocks in every encoder (blocks.k.blocks.b) and its final norm
    encoders:K    the stem and the first K multi-scale encoders (blocks, fusion included)
"""

from __future__ import annotations

import re
from collections import OrderedDict

from torch import nn

STEM = ("patch_embed.", "pos_embed.", "cls_token.")
PARTS_HELP = "patch_embed, branch0, branch1, encoders:K"
_ENCODERS = re.compile(r"^encoders:(\d+)$")


def check_parts(parts: list[str] | None, num_encoders: int | None = None) -> None:
    """Refuse unknown part names (and, with ``num_encoders``, a K beyond the model) naming ``--freeze``."""
    for p in parts or []:
        m = _ENCODERS.match(p)
        if p not in ("patch_embed", "branch0", "branch1") and not m:
            raise ValueError(f"--freeze {p}: no such part; parts are {PARTS_HELP}")
        if m and not 1 <= int(m.group(1)) <= (num_encoders or 10**9):
            raise ValueError(f"--freeze {p}: K must be in [1, {num_encoders}] (the model has {num_encoders} encoders)")


def _in_part(name: str, part: str, single_branch: bool) -> bool:
    if part == "patch_embed":
        return name.startswith(STEM)
    m = _ENCODERS.match(part)
    if m:
        k = re.match(r"^blocks\.(\d+)\.", name)
        return name.startswith(STEM) or (k is not None and int(k.group(1)) < int(m.group(1)))
    b = int(part[-1])
    if single_branch:  # the baseline keeps only branch 1, stored at index 0
        if b == 0:
            return False
        b = 0
    return bool(
        re.match(rf"^(patch_embed|pos_embed|cls_token|norm)\.{b}(\.|$)", name)
        or re.match(rf"^blocks\.\d+\.blocks\.{b}\.", name)
    )


def apply_freeze(model: nn.Module, parts: list[str] | None, linear_probe: bool = False) -> list[str]:
    """Set ``requires_grad`` False on the named parts (or everything but the heads); returns the frozen names."""
    check_parts(parts, model.cfg.num_encoders)
    single = model.cfg.single_branch
    frozen = []
    for name, p in model.named_parameters():
        if (linear_probe and not name.startswith("head.")) or any(_in_part(name, part, single) for part in parts or []):
            p.requires_grad_(False)
            frozen.append(name)
    if parts and not frozen:
        raise ValueError(f"--freeze {' '.join(parts)}: matches no weight of this model")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"--freeze {' '.join(parts or [])}: nothing left to train")
    return frozen


def _group(name: str) -> str:
    m = re.match(r"^(blocks\.\d+|[a-z_]+)", name)
    return m.group(1) if m else name


def trainable_table(model: nn.Module) -> str:
    """One row per top-level part (stem pieces, each encoder, norms, heads): parameters and how many train."""
    rows: OrderedDict[str, list[int]] = OrderedDict()
    for name, p in model.named_parameters():
        r = rows.setdefault(_group(name), [0, 0])
        r[0] += p.numel()
        r[1] += p.numel() if p.requires_grad else 0
    total, train = sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())
    lines = [f"{'part':<14}{'params':>12}{'trainable':>12}"]
    lines += [f"{k:<14}{n:>12,}{t:>12,}" for k, (n, t) in rows.items()]
    lines.append(f"{'total':<14}{total:>12,}{train:>12,}  ({100.0 * train / max(1, total):.1f}% trainable)")
    return "\n".join(lines)
