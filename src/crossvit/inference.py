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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .hub import CONFIG_NAME, eval_transform, from_pretrained
from .model import CrossViT
from .tools.images import ImageReadError, as_pil
from .weights import CheckpointError, load_into, read_state_dict

log = logging.getLogger("crossvit")

ImageLike = Image.Image | str | Path | np.ndarray


@dataclass
class Prediction:
    """The result for one input. ``topk`` is [(label, probability)] best first; ``error`` is set when unreadable."""

    source: str
    topk: list[tuple[str, float]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # class indices of ``topk``
    probs: Tensor | None = None  # (num_classes,) fp32 probabilities, sum 1
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        """The top-1 label, or None for an input that could not be read."""
        return self.topk[0][0] if self.topk else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "topk": [{"label": lab, "index": i, "prob": p} for (lab, p), i in zip(self.topk, self.indices)],
            "error": self.error,
        }


def unwrap(model: Any) -> CrossViT:
    """The CrossViT inside a fast inference wrapper (``crossvit.fast``), or ``model`` itself."""
    from .fast import InferenceModel
    from .openvino_cpu import Network

    return model.model if isinstance(model, (InferenceModel, Network)) else model


def label_names(model: CrossViT) -> list[str] | None:
    """``model.label_names`` when it has one name per class, else None (callers then print class indices)."""
    names = getattr(model, "label_names", None)
    return list(names) if names and len(names) == model.num_classes else None


def _source_name(item: object, i: int) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return getattr(item, "filename", "") or f"<image {i}>"


def _is_single(images: object) -> bool:
    return isinstance(images, (Image.Image, str, Path)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3))


@torch.no_grad()
def predict(
    model: CrossViT,
    images: ImageLike | Iterable[ImageLike],
    topk: int = 5,
    batch_size: int = 32,
    transform: Any = None,
) -> list[Prediction]:
    """Top-k predictions for PIL images, paths or (H, W, 3) arrays, in input order (always a list).

    Args:
        model: a CrossViT with a classifier (its device and dtype are used), or its fast form from
            ``model.to_inference(...)`` / :func:`crossvit.fast.to_inference` (bf16, compiled, OpenVINO), which takes
            fp32 images; metadata (classes, label names, preprocessing) then comes from the wrapped model.
        images: one image or an iterable of them; mixed kinds are fine.
        topk: classes per image (capped at the class count).
        batch_size: images per forward pass; only one batch of decoded images is held at a time.
        transform: preprocessing; default :func:`crossvit.eval_transform` of the model.
    """
    run, model = model, unwrap(model)
    if model.num_classes < 1:
        raise ValueError("the model has no classifier (num_classes=0); create it with num_classes >= 1")
    if topk < 1 or batch_size < 1:
        raise ValueError(f"topk and batch_size must be >= 1, got topk={topk}, batch_size={batch_size}")
    items: Sequence[ImageLike] = [images] if _is_single(images) else list(images)  # type: ignore[list-item]
    tf = transform or eval_transform(model)
    names = label_names(model)
    k = min(topk, model.num_classes)
    param = next(model.parameters())
    in_dtype = param.dtype if run is model else torch.float32  # the fast wrappers cast fp32 images themselves
    was_training = model.training
    model.eval()
    out: list[Prediction] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            results = [Prediction(_source_name(it, start + j)) for j, it in enumerate(chunk)]
            tensors, slots = [], []
            for j, it in enumerate(chunk):
                try:
                    tensors.append(tf(as_pil(it)))  # (C, H, W)
                    slots.append(j)
                except ImageReadError as e:
                    results[j].error = str(e)
            if tensors:
                x = torch.stack(tensors).to(device=param.device, dtype=in_dtype)  # (b, C, H, W)
                probs = run(x).float().softmax(dim=-1).cpu()  # (b, num_classes)
                top_p, top_i = probs.topk(k, dim=-1)  # (b, k)
                for row, j in enumerate(slots):
                    idx = top_i[row].tolist()
                    results[j].indices = idx
                    results[j].topk = [(names[c] if names else str(c), float(p)) for c, p in zip(idx, top_p[row])]
                    results[j].probs = probs[row]
            out += results
    finally:
        model.train(was_training)
    return out


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
    from .factory import create_model
    from .registry import get_entry

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


__all__ = ["Prediction", "label_names", "load_model", "predict"]
