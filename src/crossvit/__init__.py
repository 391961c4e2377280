"""CrossViT: Cross-Attention Multi-Scale Vision Transformer (Chen, Fan, Panda, ICCV 2021), from the paper."""

from . import runtime  # noqa: F401  (gives CrossViT its predict / to_inference methods)
from .io.factory import create_model
from .io.hub import data_config, eval_transform, from_pretrained, save_pretrained, write_card
from .io.push import push_to_hub
from .io.weights import CheckpointError, read_state_dict, resize_pos_embed, to_timm_state_dict
from .models.config import CrossViTConfig
from .models.features import CrossViTFeatures
from .models.model import CrossViT
from .models.registry import PretrainedCfg, get_entry, list_models

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CrossViT",
    "CrossViTConfig",
    "CrossViTFeatures",
    "PretrainedCfg",
    "create_model",
    "data_config",
    "eval_transform",
    "from_pretrained",
    "get_entry",
    "list_models",
    "read_state_dict",
    "resize_pos_embed",
    "push_to_hub",
    "save_pretrained",
    "write_card",
    "to_timm_state_dict",
    "__version__",
]
