"""Every named CrossViT as a row of data: its architecture and, where released, its weights.

Names follow timm (``*_240``, ``*_408`` give the input resolution); the official release's names (``*_224``,
``*_384``) are accepted as aliases.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass, field

from .config import FUSIONS, CrossViTConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IBM_RELEASE = "https://github.com/IBM/CrossViT/releases/download/weights-0.1/"


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a set of released weights lives and the preprocessing they expect (timm's pretrained_cfg fields)."""

    tag: str = "in1k"
    hf_hub_id: str | None = None  # timm's copy (timm key layout)
    url: str | None = None  # the official release (IBM key layout)
    num_classes: int = 1000
    input_size: tuple[int, int, int] = (3, 240, 240)
    crop_pct: float = 0.875
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    top1: float | None = None  # ImageNet-1k top-1 of these weights as timm measured them
    license: str = "apache-2.0"

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> PretrainedCfg:
        """The fields of a release's ``pretrained_cfg`` (timm's keys; those it does not know are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cfg: CrossViTConfig
    description: str
    pretrained: tuple[PretrainedCfg, ...] = field(default_factory=tuple)
    aliases: tuple[str, ...] = ()
    data: PretrainedCfg | None = None  # preprocessing of a model with no released weights (e.g. the CIFAR models)


def _arch(dim: int, heads: int, large_depth: int, mlp: float, **kw) -> CrossViTConfig:
    return CrossViTConfig(
        embed_dim=(dim, 2 * dim), num_heads=(heads, heads), large_depth=large_depth, mlp_ratio=(mlp, mlp), **kw
    )


_SIZES = {  # Table 1: S-branch dim, heads, M, r
    "tiny": (96, 3, 4, 4.0),
    "small": (192, 6, 4, 4.0),
    "base": (384, 12, 4, 4.0),
    "9": (128, 4, 3, 3.0),
    "15": (192, 6, 5, 3.0),
    "18": (224, 7, 6, 3.0),
}
_TOP1 = {  # timm's measured ImageNet top-1 of the released weights (results-imagenet.csv)
    "crossvit_tiny_240": 73.352,
    "crossvit_small_240": 81.036,
    "crossvit_base_240": 82.212,
    "crossvit_9_240": 73.994,
    "crossvit_15_240": 81.522,
    "crossvit_18_240": 82.390,
    "crossvit_9_dagger_240": 76.990,
    "crossvit_15_dagger_240": 82.302,
    "crossvit_18_dagger_240": 82.494,
    "crossvit_15_dagger_408": 83.842,
    "crossvit_18_dagger_408": 84.198,
}

_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register(entry: ModelEntry) -> None:
    if entry.name in _REGISTRY or entry.name in _ALIASES:
        raise ValueError(f"model name {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    for a in entry.aliases:
        _ALIASES[a] = entry.name


def _released(name: str, ibm: str, size: int = 240, crop: float = 0.875) -> PretrainedCfg:
    return PretrainedCfg(
        hf_hub_id=f"timm/{name}.in1k",
        url=f"{IBM_RELEASE}{ibm}.pth",
        input_size=(3, size, size),
        crop_pct=crop,
        top1=_TOP1[name],
    )


for key, (dim, heads, m, r) in _SIZES.items():
    name, ibm = f"crossvit_{key}_240", f"crossvit_{key}_224"
    register(
        ModelEntry(
            name,
            _arch(dim, heads, m, r),
            f"CrossViT-{key.capitalize() if not key.isdigit() else key} (Table 1)",
            (_released(name, ibm),),
            (ibm,),
        )
    )
    if key.isdigit():
        name, ibm = f"crossvit_{key}_dagger_240", f"crossvit_{key}_dagger_224"
        register(
            ModelEntry(
                name,
                _arch(dim, heads, m, r, multi_conv=True),
                f"CrossViT-{key}\u2020, three-convolution patch embedding (Table 1)",
                (_released(name, ibm),),
                (ibm,),
            )
        )
    if key in ("15", "18"):
        name, ibm = f"crossvit_{key}_dagger_408", f"crossvit_{key}_dagger_384"
        register(
            ModelEntry(
                name,
                _arch(dim, heads, m, r, multi_conv=True, img_size=(408, 408), img_scale=(1.0, 384 / 408)),
                f"CrossViT-{key}\u2020 re-tuned at 408/384 px (Table 4)",
                (_released(name, ibm, 408, 1.0),),
                (ibm,),
            )
        )

register(
    ModelEntry(
        # The paper's "@480" is the L branch's resolution, as "@384" is for the released 408-px model: the S
        # branch sees 480 * 240 / 224 -> 516 px (43 x 43 patches of 12). That gives Table 4's 44.9 M params.
        "crossvit_18_dagger_516",
        _arch(224, 7, 6, 3.0, multi_conv=True, img_size=(516, 516), img_scale=(1.0, 480 / 516)),
        "CrossViT-18\u2020 at 516/480 px (Table 4 '@480'; no weights were released)",
        aliases=("crossvit_18_dagger_480",),
    )
)

# Table 6's ablations: every scheme but the released one (the config's default) gets a registered variant.
ABLATION_FUSIONS: tuple[str, ...] = tuple(f for f in FUSIONS if f != CrossViTConfig.fusion)


def fusion_tag(fusion: str) -> str:
    """How a fusion scheme is spelled inside a model name: ``all_attn`` -> ``allattn``."""
    return fusion.replace("_", "")


_S = _SIZES["small"]
for fusion in ABLATION_FUSIONS:
    register(
        ModelEntry(
            f"crossvit_small_fuse_{fusion_tag(fusion)}_240",
            _arch(*_S, fusion=fusion),
            f"CrossViT-S with {fusion.replace('_', '-')} fusion (Table 6)",
        )
    )
register(
    ModelEntry(
        # "the number of patch tokens are 4 [times]" (Sec. 4.3): both branches see 224 px, 28^2 vs 14^2 tokens.
        "crossvit_small_t7a_p8_224",
        _arch(*_S, patch_size=(8, 16), img_size=(224, 224), img_scale=(1.0, 1.0)),
        "CrossViT-S with patch sizes (8, 16) at 224 px (Table 7 A)",
    )
)
register(
    ModelEntry(
        "crossvit_small_t7b_sdim384_240",
        CrossViTConfig(embed_dim=(384, 384), num_heads=(6, 6), large_depth=4),
        "CrossViT-S with a 384-wide S branch (Table 7 B)",
    )
)
register(
    ModelEntry(
        "crossvit_small_t7c_sdepth2_240", _arch(*_S, small_depth=2), "CrossViT-S with N=2 S-branch blocks (Table 7 C)"
    )
)
register(
    ModelEntry(
        "crossvit_small_t7d_cross2_240",
        _arch(*_S, cross_depth=2),
        "CrossViT-S with L=2 cross-attention modules (Table 7 D)",
    )
)
register(
    ModelEntry(
        "crossvit_small_t7e_k6_240",
        CrossViTConfig(num_encoders=6, large_depth=2),
        "CrossViT-S with K=6 encoders of M=2 (Table 7 E)",
    )
)
register(
    ModelEntry(
        "crossvit_small_nocls_240",
        _arch(*_S, cls_token=False),
        "CrossViT-S without CLS tokens: mean patch token as agent (Sec. 4.3)",
    )
)

# --- CIFAR-10 at 32x32 (issue 8): the paper's shape scaled down ------------------------------------------------
# 32-px images are resized to 36 (like 224 -> 240): S branch patch 3 on 36 px (12x12 = 144 tokens), L branch
# patch 4 on 32 px (8x8 = 64 tokens): 2.25x the tokens, near the released 400 / 196. A light S branch (64 wide,
# N=1) and a heavy L branch (128 wide, M=3), K=3, as CrossViT-9/15 are built. 1.99 M params, 0.14 GMACs.
CIFAR_DATA = PretrainedCfg(
    tag="cifar10",
    num_classes=10,
    input_size=(3, 36, 36),
    crop_pct=1.0,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
_CIFAR = CrossViTConfig(
    img_size=(36, 36),
    img_scale=(1.0, 32 / 36),
    patch_size=(3, 4),
    embed_dim=(64, 128),
    num_heads=(4, 4),
    mlp_ratio=(3.0, 3.0),
    large_depth=3,
    num_classes=10,
)


def register_family(prefix: str, suffix: str, cfg: CrossViTConfig, data: PretrainedCfg, description: str) -> None:
    """``{prefix}_{suffix}``, its Table 6 fusion variants (``{prefix}_fuse_{tag}_{suffix}``) and its single-branch
    baseline (``{prefix}_single_{suffix}``): the set of names a Table 2 / Table 6 comparison needs."""
    name = f"{prefix}_{suffix}"
    register(ModelEntry(name, cfg, description, data=data))
    for fusion in ABLATION_FUSIONS:
        register(
            ModelEntry(
                f"{prefix}_fuse_{fusion_tag(fusion)}_{suffix}",
                cfg.replace(fusion=fusion),
                f"{name} with {fusion.replace('_', '-')} fusion (Table 6 at 32 px)",
                data=data,
            )
        )
    register(
        ModelEntry(
            f"{prefix}_single_{suffix}",
            cfg.replace(single_branch=True, fusion="none"),
            f"Single-branch DeiT-style baseline: {name}'s L branch alone (Table 2 at 32 px)",
            data=data,
        )
    )


register_family("crossvit_cifar", "36", _CIFAR, CIFAR_DATA, "CIFAR-size CrossViT, cross-attention fusion")

# --- CIFAR-10 on a CPU: a convolutional tokenizer and few tokens -------------------------------------------------
# The dagger models' convolutional embedding adapted to 32 px: a two-stage conv stem (64, 128 channels, each stage
# conv3x3-BN-ReLU-maxpool) shared by both branches turns the image into an 8x8 map; the S branch takes it as 4-px
# patches (8x8 = 64 tokens, 96 wide), the L branch as 8-px patches (4x4 = 16 tokens, 192 wide). K=3 encoders of
# N=1 / M=3 blocks, mlp ratio 3, one cross-attention per encoder. 4.60 M params, 0.109 GMACs: a quarter fewer
# multiply-adds than crossvit_cifar_36 buys 16x fewer tokens in the L branch, and the stem gives the locality
# that attention alone learns slowly from 45,000 images.
CIFAR_CONV_DATA = dataclasses.replace(CIFAR_DATA, input_size=(3, 32, 32))
_CIFAR_CONV = CrossViTConfig(
    img_size=(32, 32),
    img_scale=(1.0, 1.0),
    patch_size=(4, 8),
    stem_dims=(64, 128),
    embed_dim=(96, 192),
    num_heads=(4, 4),
    mlp_ratio=(3.0, 3.0),
    large_depth=3,
    num_classes=10,
)
register_family(
    "crossvit_cifar_conv",
    "32",
    _CIFAR_CONV,
    CIFAR_CONV_DATA,
    "CPU-sized CIFAR CrossViT: shared conv tokenizer, 64 + 16 tokens, cross-attention fusion",
)

# The recipes' model since the three-stage tokenizer paid off at 30 minutes and at 90: a third conv stage (two
# 256-channel 3x3 convolutions at 8 px, then a max-pool) leaves a 4x4 map, cut into 16 S tokens (8-px patches, 128
# wide) and 4 L tokens (16-px patches, 256 wide); M=2. 7.21 M params, 0.139 GMACs, yet faster to train on a CPU
# than the two-stage tokenizer (589 against 400-476 img/s in the 30-minute recipe, Zen 5): its transformer blocks
# see 20 tokens instead of 80.
_CIFAR_CONV3 = _CIFAR_CONV.replace(
    stem_dims=(32, 128, 256), stem_depths=(1, 2, 2), patch_size=(8, 16), embed_dim=(128, 256), large_depth=2
)
register_family(
    "crossvit_cifar_conv3",
    "32",
    _CIFAR_CONV3,
    CIFAR_CONV_DATA,
    "CPU-sized CIFAR CrossViT: three-stage conv tokenizer, 16 + 4 tokens, cross-attention fusion",
)


def resolve_name(name: str) -> str:
    """Canonical name for ``name`` (an alias or ``name.tag``); a clear error with close matches otherwise."""
    base = name.split(".", 1)[0]
    if base in _REGISTRY:
        return base
    if base in _ALIASES:
        return _ALIASES[base]
    close = difflib.get_close_matches(base, list(_REGISTRY) + list(_ALIASES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `crossvit info --list`"
    raise ValueError(f"unknown model {name!r}{hint}")


def get_entry(name: str) -> ModelEntry:
    return _REGISTRY[resolve_name(name)]


def get_pretrained_cfg(name: str) -> PretrainedCfg | None:
    entry = get_entry(name)
    tag = name.split(".", 1)[1] if "." in name else None
    for p in entry.pretrained:
        if tag is None or p.tag == tag:
            return p
    if tag is not None:
        raise ValueError(f"model {entry.name} has no weights tagged {tag!r}")
    return entry.data


def list_models(pattern: str = "*", pretrained: bool = False, aliases: bool = False) -> list[str]:
    names = [n for n, e in _REGISTRY.items() if not pretrained or e.pretrained]
    if aliases:
        names += [a for a, n in _ALIASES.items() if not pretrained or _REGISTRY[n].pretrained]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))
