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

from .prediction import ImageLike, Prediction, label_names, predict, unwrap
from .source import load_model

__all__ = ["ImageLike", "Prediction", "label_names", "load_model", "predict", "unwrap"]
