"""Top-k predictions of a model for images, with the model's own preprocessing (``model.predict`` runs this).

It needs only the model's interface (``num_classes``, ``cfg``, ``pretrained_cfg``, ``label_names``), not the
model's module, so the model can offer ``predict`` without an import cycle. Loading a model to predict with is
:func:`crossvit.runtime.inference.load_model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..io.images import ImageReadError, as_pil
from ..models.preprocess import eval_transform, split_transform
from .fast import InferenceModel
from .openvino_cpu import Network

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


def unwrap(model: Any) -> nn.Module:
    """The nn.Module inside a fast inference wrapper (``crossvit.runtime.fast``), or ``model`` itself."""
    return model.model if isinstance(model, (InferenceModel, Network)) else model  # Network: OpenVINO fp32 / int8


def label_names(model: nn.Module) -> list[str] | None:
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
    model: nn.Module,
    images: ImageLike | Iterable[ImageLike],
    topk: int = 5,
    batch_size: int = 32,
    transform: Any = None,
    threshold: float | None = None,
) -> list[Prediction]:
    """Top-k predictions for PIL images, paths or (H, W, 3) arrays, in input order (always a list).

    Args:
        model: a CrossViT with a classifier (its device and dtype are used), or its fast form from
            ``model.to_inference(...)`` / :func:`crossvit.runtime.fast.to_inference` (bf16, compiled, OpenVINO),
            which takes fp32 images; metadata (classes, label names, preprocessing) then comes from the wrapped model.
        images: one image or an iterable of them; mixed kinds are fine.
        topk: classes per image (capped at the class count).
        batch_size: images per forward pass; only one batch of decoded images is held at a time.
        transform: preprocessing; default :func:`crossvit.eval_transform` of the model.
        threshold: for a multi-label model (``model.multi_label``): ``topk`` lists every label whose sigmoid
            probability is above it, best first (default: the threshold its release records); ``probs`` are the
            per-label sigmoids.
    """
    run, model = model, unwrap(model)
    if model.num_classes < 1:
        raise ValueError("the model has no classifier (num_classes=0); create it with num_classes >= 1")
    if topk < 1 or batch_size < 1:
        raise ValueError(f"topk and batch_size must be >= 1, got topk={topk}, batch_size={batch_size}")
    items: Sequence[ImageLike] = [images] if _is_single(images) else list(images)  # type: ignore[list-item]
    tf = transform or eval_transform(model)
    split = split_transform(tf)  # normalize once per batch (same numbers) where the transform allows it
    names = label_names(model)
    k = min(topk, model.num_classes)
    multi = bool(getattr(model, "multi_label", False))
    cut = float(getattr(model, "threshold", 0.5) if threshold is None else threshold)
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
                    pil = as_pil(it)
                    tensors.append(split.per_image(pil) if split else tf(pil))  # (H, W, C) uint8 | (C, H, W)
                    slots.append(j)
                except ImageReadError as e:
                    results[j].error = str(e)
            if tensors:
                x = split.batch(tensors) if split else torch.stack(tensors)  # (b, C, H, W)
                x = x.to(device=param.device, dtype=in_dtype)
                logits = run(x).float().cpu()  # (b, num_classes)
                probs = logits.sigmoid() if multi else logits.softmax(dim=-1)
                top_p, top_i = probs.sort(dim=-1, descending=True) if multi else probs.topk(k, dim=-1)  # (b, k)
                for row, j in enumerate(slots):
                    idx = top_i[row].tolist()
                    if multi:
                        idx = [c for c, p in zip(idx, top_p[row].tolist()) if p > cut]
                    results[j].indices = idx
                    results[j].topk = [(names[c] if names else str(c), float(probs[row, c])) for c in idx]
                    results[j].probs = probs[row]
            out += results
    finally:
        model.train(was_training)
    return out


__all__ = ["ImageLike", "Prediction", "label_names", "predict", "unwrap"]
