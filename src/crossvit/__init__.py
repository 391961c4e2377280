"""CrossViT: Cross-Attention Multi-Scale Vision Transformer (Chen, Fan, Panda, ICCV 2021), from the paper."""

from .config import CrossViTConfig
from .factory import create_model
from .hub import data_config, eval_transform, from_pretrained, save_pretrained
from .model import CrossViT
from .registry import PretrainedCfg, get_entry, list_models
from .weights import CheckpointError, read_state_dict, resize_pos_embed, to_timm_state_dict

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CrossViT",
    "CrossViTConfig",
    "PretrainedCfg",
    "create_model",
    "data_config",
    "eval_transform",
    "from_pretrained",
    "get_entry",
    "list_models",
    "read_state_dict",
    "resize_pos_embed",
    "save_pretrained",
    "to_timm_state_dict",
    "__version__",
]
