"""From what the user named to a model: the one resolver behind every API and command that takes a model.

    src = resolve_source("runs/x")                    # Source(kind="release", ref="runs/x/release")
    model = load_model("runs/x")                      # ready for inference, on the CPU, in eval mode
    model = load_model("w.safetensors", "crossvit_9_240")

A source is, tried in this order:

- a release directory (``config.json`` + ``model.safetensors``), or its ``config.json``;
- a run directory: its ``release/`` when there is one, else its ``best.pth``, then its ``last.pth``;
- a training checkpoint (a ``.pth`` with its ``.sha256`` sidecar): the architecture comes from the config it holds;
- a weights file (ours, timm's or the official layout; .pth / .safetensors / .bin), with the architecture's name;
- a hub id (``user/repo``) of a release;
- a registered name (``crossvit_9_240``, an alias, ``name.tag``): the released weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..io.checkpoint import load_checkpoint
from ..io.factory import create_model
from ..io.hub import CONFIG_NAME, from_pretrained, load_config, resolve_release_dir
from ..io.weights import CheckpointError, load_into, read_state_dict
from ..models.config import CrossViTConfig
from ..models.model import CrossViT
from ..models.registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, get_entry, list_models, resolve_name
from ..models.timm_model import TimmClassifier, TimmConfig, is_timm_name

log = logging.getLogger("crossvit")

SourceKind = Literal["release", "checkpoint", "weights", "name"]
WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class Source:
    """A resolved model source. ``ref`` is a local path for every kind but ``name`` (a registered name); a hub id
    is fetched on resolution and becomes the ``release`` it holds."""

    kind: SourceKind
    ref: str
    model: str | None = None  # architecture name: given for a weights file, read from a release or a checkpoint
    config: Mapping[str, Any] | None = None  # a training checkpoint's recipe (TrainConfig fields)


def is_training_checkpoint(path: Path) -> bool:
    """Our training checkpoints travel with a checksum sidecar (``last.pth.sha256``); other files do not."""
    return path.is_file() and path.with_name(path.name + ".sha256").exists()


def _run_dir_checkpoint(d: Path) -> Path | None:
    return next((d / n for n in ("best.pth", "last.pth") if is_training_checkpoint(d / n)), None)


def _release(d: Path) -> Source:
    arch = load_config(d / CONFIG_NAME).get("architecture", "")
    return Source("release", str(d), arch if arch in list_models() else None)


def resolve_source(source: str | Path, model_name: str | None = None) -> Source:
    """What ``source`` names (see the module docstring); FileNotFoundError / ValueError naming it otherwise."""
    p = Path(source)
    if p.is_dir():
        if (p / CONFIG_NAME).is_file():
            return _release(p)
        if (p / "release" / CONFIG_NAME).is_file():
            return _release(p / "release")
        ckpt = _run_dir_checkpoint(p)
        if ckpt is None:
            raise FileNotFoundError(f"{p}: neither a release ({CONFIG_NAME}) nor a run directory (release/, best.pth)")
        p = ckpt
    if p.is_file():
        if p.name == CONFIG_NAME:
            return _release(p.parent)
        if is_training_checkpoint(p):
            conf = load_checkpoint(p).get("config")
            if isinstance(conf, dict) and conf.get("model"):
                return Source("checkpoint", str(p), str(conf["model"]), conf)
        return Source("weights", str(p), model_name)
    s = str(source)
    if p.suffix in WEIGHTS_SUFFIXES or s.startswith((".", "/")) or s.count("/") > 1:
        raise FileNotFoundError(f"{source}: no such weights file or release directory")
    if s.count("/") == 1:
        return _release(resolve_release_dir(s))  # a hub id; a missing local path fails here, naming it
    return Source("name", resolve_name(s))


def recipe_pretrained_cfg(recipe: Mapping[str, Any], cfg: CrossViTConfig | TimmConfig) -> PretrainedCfg:
    """The preprocessing a model trained with ``recipe`` (TrainConfig fields) is evaluated and released with."""
    return PretrainedCfg(
        tag="custom",
        num_classes=cfg.num_classes,
        input_size=(cfg.in_chans, *cfg.img_size),
        crop_pct=float(recipe.get("crop_pct", 0.875)),
        interpolation=str(recipe.get("eval_interpolation", "bicubic")),
        mean=tuple(recipe.get("mean") or IMAGENET_MEAN),
        std=tuple(recipe.get("std") or IMAGENET_STD),
    )


def model_args(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe's ``model_args`` as config overrides (YAML lists become the config's tuples)."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in (recipe.get("model_args") or {}).items()}


def _from_checkpoint(src: Source, img_size: int | None) -> CrossViT | TimmClassifier:
    st = load_checkpoint(src.ref)
    conf = src.config or {}
    if img_size is not None and conf.get("img_size") not in (None, img_size):
        raise ValueError(f"{src.ref}: --img-size with a training checkpoint: save a release dir first (crossvit train)")
    size = conf.get("img_size")
    base = TimmConfig.for_name(src.model) if is_timm_name(src.model) else get_entry(src.model).cfg
    cfg = base.with_overrides(num_classes=conf.get("num_classes"), img_size=size, **model_args(conf))
    if isinstance(cfg, TimmConfig):
        model = TimmClassifier(cfg, pretrained_cfg=recipe_pretrained_cfg(conf, cfg))
    else:
        model = create_model(cfg, pretrained_cfg=recipe_pretrained_cfg(conf, cfg))
    model.load_state_dict(st["model"])
    model.label_names = st.get("label_names")
    return model


def _size_from_pos_embed(sd: dict[str, Tensor], cfg: CrossViTConfig) -> tuple[int, int] | None:
    """The training resolution of a weights file, read off the S branch's position embedding (square grids)."""
    pe = sd.get("pos_embed.0")
    if pe is None or cfg.img_scale[0] != 1.0:
        return None
    n = pe.shape[1] - cfg.num_prefix_tokens
    side = int(n**0.5)
    if side * side != n:
        return None
    return (side * cfg.patch_size[0],) * 2


def _from_weights(src: Source, img_size: int | None) -> CrossViT:
    path = Path(src.ref)
    if src.model is None:
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
    # the class count from its heads and the resolution from its position embedding: a fine-tuned file keeps both
    kw: dict[str, Any] = {"num_classes": int(head.shape[0])}
    size = img_size or _size_from_pos_embed(sd, get_entry(src.model).cfg)
    if size:
        kw["img_size"] = size
    model = create_model(src.model, **kw)
    load_into(model, sd, source=str(path))
    model.label_names = None
    return model


def load_model(
    source: str | Path | Source,
    model_name: str | None = None,
    device: str | torch.device = "cpu",
    img_size: int | None = None,
) -> CrossViT:
    """The model ``source`` names, in eval mode on ``device``; ``img_size`` evaluates at another resolution
    (position embeddings resized). ``model_name`` is needed only for a bare weights file."""
    src = source if isinstance(source, Source) else resolve_source(source, model_name)
    if src.kind == "release":
        if model_name is not None:
            log.info("--model %s ignored: %s carries its architecture in %s", model_name, src.ref, CONFIG_NAME)
        model = from_pretrained(src.ref, img_size=img_size)
    elif src.kind == "name":
        model = create_model(src.ref, pretrained=True, img_size=img_size)
    elif src.kind == "checkpoint":
        model = _from_checkpoint(src, img_size)
    else:
        model = _from_weights(src, img_size)
    return model.to(device).eval()
