"""Run a CrossViT on images with its own preprocessing: the short Python API behind ``crossvit predict``.

    import crossvit
    model = crossvit.from_pretrained("runs/demo/release")      # a release dir (config.json + model.safetensors)
    for p in model.predict([pil_image, "cat.jpg"], topk=3):
        print(p.source, p.topk if p.ok else p.error)           # [('cat', 0.91), ('dog', 0.05), ...]

Preprocessing is :func:`crossvit.eval_transform` (input size, crop_pct, interpolation, mean/std from the model's
``pretrained_cfg``). Inputs are read one batch at a time; an input that cannot be read gets a :class:`Prediction`
with ``error`` set and the others are still predicted. Labels come from ``model.label_names``, else class
indices as strings.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .factory import create_model
from .hub import CONFIG_NAME, from_pretrained
from .model import CrossViT
from .prediction import ImageLike, Prediction, label_names, predict, unwrap
from .registry import get_entry
from .weights import CheckpointError, load_into, read_state_dict

log = logging.getLogger("crossvit")


def _size_from_pos_embed(sd: dict[str, Tensor], model_cfg: Any) -> tuple[int, int] | None:
    """The training resolution of a weights file, read off the S branch's position embedding (square grids)."""
    pe = sd.get("pos_embed.0")
    if pe is None or model_cfg.img_scale[0] != 1.0:
        return None
    n = pe.shape[1] - model_cfg.num_prefix_tokens
    side = math.isqrt(n)
    if side * side != n:
        return None
    return (side * model_cfg.patch_size[0],) * 2  # type: ignore[return-value]


def load_model(checkpoint: str | Path, model_name: str | None = None, device: str | torch.device = "cpu") -> CrossViT:
    """A CrossViT ready for inference from a release dir / hub id, or from a weights file plus a model name.

    For a bare weights file the class count is read off its heads and the resolution off its position embedding,
    so a fine-tuned checkpoint keeps its classifier. Errors name the file.
    """
    path = Path(checkpoint)
    if path.is_file() and path.name != CONFIG_NAME:
        if model_name is None:
            raise ValueError(
                f"{path}: a weights file needs --model NAME (its architecture, e.g. crossvit_9_240); "
                f"a release directory ({CONFIG_NAME} + model.safetensors) needs none"
            )
        sd = read_state_dict(path)
        if "pos_embed.0" not in sd or "patch_embed.0.proj.weight" not in sd and "patch_embed.0.proj.0.weight" not in sd:
            raise CheckpointError(
                f"{path}: not CrossViT weights (no pos_embed.0 / patch_embed.0.proj; it holds e.g. "
                f"{', '.join(list(sd)[:4])}); is it a checkpoint of another architecture?"
            )
        head = sd.get("head.0.bias")
        if head is None:
            raise CheckpointError(f"{path}: holds no classifier (no head.0.* tensors); cannot predict classes")
        kw: dict[str, Any] = {"num_classes": int(head.shape[0])}
        size = _size_from_pos_embed(sd, get_entry(model_name).cfg)
        if size:
            kw["img_size"] = size
        model = create_model(model_name, **kw)
        load_into(model, sd, source=str(path))
        model.label_names = None
    else:
        if model_name is not None:
            log.info("--model %s ignored: %s carries its architecture in %s", model_name, checkpoint, CONFIG_NAME)
        model = from_pretrained(checkpoint)
    return model.to(device).eval()


__all__ = ["ImageLike", "Prediction", "label_names", "load_model", "predict", "unwrap"]
