"""Building blocks of CrossViT, one concept per file."""

from .attention import ATTENTION_IMPLS, Attention, CrossAttention, attend
from .block import AttentionBlock, Block, CrossAttentionBlock, norm_layer, projection
from .conv_stem import ConvStem
from .drop import DropPath, drop_path
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pos_embed import resize_pos_embed
from .resize import resize, resize_bicubic

__all__ = [
    "ATTENTION_IMPLS",
    "Attention",
    "AttentionBlock",
    "Block",
    "ConvStem",
    "CrossAttention",
    "CrossAttentionBlock",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "attend",
    "drop_path",
    "norm_layer",
    "projection",
    "resize",
    "resize_bicubic",
    "resize_pos_embed",
]
