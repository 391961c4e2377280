"""One typed dataclass describes a CrossViT architecture; every module takes it.

Paper letters (Table 1 and Table 7 of Chen et al., ICCV 2021):
    K = ``num_encoders``   multi-scale transformer encoders
    N = ``small_depth``    transformer blocks of the small-patch (S) branch per encoder
    M = ``large_depth``    transformer blocks of the large-patch (L) branch per encoder
    L = ``cross_depth``    cross-attention modules per encoder
The released code packs (N, M, L) into a ``depth`` triple whose last entry 0 means *one* cross-attention module;
we spell them out instead. Branch 0 is always the S branch, branch 1 the L branch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

# The one list of fusion schemes (Table 6). The tuple, the fusion modules and the registry's variants derive from it.
FusionKind = Literal["cross_attn", "none", "all_attn", "cls_token", "pairwise"]
FUSIONS: tuple[str, ...] = get_args(FusionKind)


def _pair(v: Any) -> tuple:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"expected one value or a pair, got {v!r}")
        return tuple(v)
    return (v, v)


@dataclass(frozen=True)
class CrossViTConfig:
    """Architecture of one CrossViT. Defaults are CrossViT-S (Table 1)."""

    img_size: tuple[int, int] = (240, 240)  # (H, W) of the image the model is fed
    img_scale: tuple[float, float] = (1.0, 224 / 240)  # per-branch resize factor of the input (240 -> 240 / 224)
    patch_size: tuple[int, int] = (12, 16)
    embed_dim: tuple[int, int] = (192, 384)
    num_heads: tuple[int, int] = (6, 6)
    mlp_ratio: tuple[float, float] = (4.0, 4.0)
    num_encoders: int = 3  # K
    small_depth: int = 1  # N
    large_depth: int = 4  # M
    cross_depth: int = 1  # L
    # With L > 1: False (released code; gives Table 7 D's 5.6 GFLOPs): modules after the first attend only to the
    # running CLS token. True: every module re-attends to the other branch's patch tokens (what Eq. 6 suggests).
    cross_reattend: bool = False
    multi_conv: bool = False  # the dagger models: three convolutions instead of one linear patch projection
    # Widths of a convolutional tokenizer shared by both branches (layers/conv_stem.py), each stage halving the
    # image; patch sizes still count image pixels and must divide by the stem's stride. Empty: no stem.
    stem_dims: tuple[int, ...] = ()
    stem_depths: tuple[int, ...] = ()  # convolutions per stem stage (empty: one each)
    fusion: FusionKind = "cross_attn"  # Table 6
    cls_token: bool = True  # False: the no-CLS ablation (mean of patch tokens is the agent)
    # True: the DeiT-style baseline of Table 2 -- the L branch alone (K * M blocks, one head), no S branch, no fusion.
    single_branch: bool = False
    qkv_bias: bool = True
    in_chans: int = 3
    num_classes: int = 1000
    global_pool: Literal["token", "avg"] = "token"
    drop_rate: float = 0.0  # before the heads
    pos_drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    proj_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # timm's name: accept images of any size at run time, each branch's position embedding interpolated to the
    # grid of that size (the L branch's resize keeps img_scale); False rejects any size but img_size.
    dynamic_img_size: bool = False

    def __post_init__(self) -> None:
        # Normalise scalars to pairs so users may pass img_size=384 or patch_size=16.
        for name in ("img_size", "img_scale", "patch_size", "embed_dim", "num_heads", "mlp_ratio"):
            try:
                object.__setattr__(self, name, _pair(getattr(self, name)))
            except ValueError as e:
                raise ValueError(f"CrossViTConfig.{name}: {e}") from None
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        object.__setattr__(self, "patch_size", tuple(int(v) for v in self.patch_size))
        object.__setattr__(self, "stem_dims", tuple(int(v) for v in self.stem_dims))
        object.__setattr__(self, "stem_depths", tuple(int(v) for v in self.stem_depths))
        self.validate()

    def validate(self) -> None:
        def bad(option: str, why: str) -> ValueError:
            return ValueError(f"CrossViTConfig.{option}: {why}")

        if self.fusion not in FUSIONS:
            raise bad("fusion", f"{self.fusion!r} is not one of {', '.join(FUSIONS)}")
        if self.global_pool not in ("token", "avg"):
            raise bad("global_pool", f"{self.global_pool!r} is not 'token' or 'avg'")
        if self.single_branch and self.fusion != "none":
            raise bad("single_branch", f"a single branch has nothing to fuse; set fusion='none' (got {self.fusion!r})")
        if not self.cls_token and self.fusion != "cross_attn":
            raise bad("cls_token", "the no-CLS ablation is defined for cross-attention fusion only")
        for name in ("num_encoders", "small_depth", "large_depth", "cross_depth", "in_chans"):
            if getattr(self, name) < (0 if name.endswith("_depth") else 1):
                raise bad(name, f"must be positive, got {getattr(self, name)}")
        if self.dynamic_img_size and self.fusion == "pairwise":
            raise bad("dynamic_img_size", "pairwise fusion mixes patch grids of a fixed size; use a fixed img_size")
        if self.fusion == "cross_attn" and self.cross_depth < 1:
            raise bad("cross_depth", "cross-attention fusion needs at least one module")
        if self.num_classes < 0:
            raise bad("num_classes", f"must be >= 0, got {self.num_classes}")
        for d, h in zip(self.embed_dim, self.num_heads):
            if d % h:
                raise bad("num_heads", f"embedding dim {d} is not divisible by {h} heads")
        if self.multi_conv and any(p not in (12, 16) for p in self.patch_size):
            raise bad("multi_conv", f"the three-convolution embedding needs patch 12 or 16, got {self.patch_size}")
        for rate in ("drop_rate", "pos_drop_rate", "attn_drop_rate", "proj_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, rate) < 1.0:
                raise bad(rate, f"must be in [0, 1), got {getattr(self, rate)}")
        if self.stem_dims:
            stride = self.stem_stride
            if self.multi_conv:
                raise bad("stem_dims", "a shared convolutional stem replaces the multi_conv embedding; use one")
            if any(s != 1.0 for s in self.img_scale):
                raise bad(
                    "stem_dims",
                    f"a shared stem feeds both branches one image; img_scale must be 1.0, got {self.img_scale}",
                )
            if self.stem_depths and (len(self.stem_depths) != len(self.stem_dims) or min(self.stem_depths) < 1):
                raise bad("stem_depths", f"{self.stem_depths}: one count >= 1 per stage of stem_dims {self.stem_dims}")
            if any(p % stride for p in self.patch_size):
                raise bad("patch_size", f"{self.patch_size} must be multiples of the stem's stride {stride}")
        # The first branch with scale 1.0 sees the image as it is: its size must divide by its patch.
        for i, (s, p) in enumerate(zip(self.img_scale, self.patch_size)):
            if s == 1.0 and any(v % p for v in self.img_size):
                ok = [p * max(1, round(v / p)) for v in self.img_size]
                raise bad(
                    "img_size",
                    f"{self.img_size[0]}x{self.img_size[1]} is not divisible by branch {i}'s patch size {p}; "
                    f"the nearest valid size is {ok[0]}x{ok[1]}",
                )
            for v in self.img_size:
                if round(v * s / p) < 1:
                    raise bad("img_size", f"{v} px is smaller than one patch of branch {i} ({p} px at scale {s:.3f})")

    # --- derived geometry -------------------------------------------------------------------------------------
    @property
    def branch_img_size(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Input size of each branch: the image scaled by img_scale, rounded to a multiple of the patch size."""
        return self.branch_sizes(self.img_size)

    def branch_sizes(self, img_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """What ``branch_img_size`` is for an image of ``img_size`` (H, W) (a dynamic-size model's input)."""
        out = []
        for s, p in zip(self.img_scale, self.patch_size):
            out.append(tuple(p * max(1, round(int(v) * s / p)) for v in img_size))
        return tuple(out)  # type: ignore[return-value]

    @property
    def stem_stride(self) -> int:
        return 2 ** len(self.stem_dims)

    @property
    def stem_stage_depths(self) -> tuple[int, ...]:
        """Convolutions in each stem stage, with the empty default spelled out (one each)."""
        return self.stem_depths or (1,) * len(self.stem_dims)

    @property
    def grid_size(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return tuple((h // p, w // p) for (h, w), p in zip(self.branch_img_size, self.patch_size))  # type: ignore

    @property
    def num_patches(self) -> tuple[int, int]:
        return tuple(h * w for h, w in self.grid_size)  # type: ignore[return-value]

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.cls_token else 0

    @property
    def branches(self) -> tuple[int, ...]:
        """Indices of the branches the model runs: both, or the L branch alone for the single-branch baseline."""
        return (1,) if self.single_branch else (0, 1)

    @property
    def num_features(self) -> int:
        return sum(self.embed_dim[b] for b in self.branches)

    @property
    def fusion_dim(self) -> int:
        """Common width in which the heuristic fusions (Eq. 2-4) mix the branches: the wider (L) branch's."""
        return max(self.embed_dim)

    def replace(self, **changes: Any) -> CrossViTConfig:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            names = [f.name for f in dataclasses.fields(self)]
            hints = [
                f"{u} (did you mean {', '.join(difflib.get_close_matches(u, names, 2)) or 'nothing close'}?)"
                for u in unknown
            ]
            raise TypeError(f"unknown CrossViTConfig option(s): {'; '.join(hints)}")
        return dataclasses.replace(self, **changes)

    def with_overrides(self, **changes: Any) -> CrossViTConfig:
        """``replace`` that ignores options given as None (the unset arguments of create_model and friends)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return self.replace(**changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CrossViTConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown architecture key(s) in config: {', '.join(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def drop_path_rates(self) -> list[list[float]]:
        """Stochastic-depth rate of every block slot, per encoder, following the released schedule.

        The released code spreads ``linspace(0, rate, K * M)`` over the L-branch depth and gives each encoder a
        slice of ``max(N, M)`` (+ L when L > 1) slots: branch block i takes slot i, cross-attention the last one.
        Matching it keeps fine-tuning of released weights identical to the original recipe.
        """
        extra = self.cross_depth if self.cross_depth > 1 else 0
        total = self.num_encoders * (self.large_depth + extra)
        rates = [self.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        out, ptr = [], 0
        for _ in range(self.num_encoders):
            width = max(self.small_depth, self.large_depth) + extra
            sl = rates[ptr : ptr + width]
            sl = sl + [sl[-1] if sl else 0.0] * (width - len(sl))  # short tail when N > M
            out.append(sl)
            ptr += width
        return out


def isqrt_exact(n: int) -> int | None:
    r = math.isqrt(n)
    return r if r * r == n else None
