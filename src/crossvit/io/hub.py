"""The release format: ``model.safetensors`` + ``config.json`` in timm's Hugging Face hub layout.

    crossvit.save_pretrained(model, "out/", label_names=[...])
    model = crossvit.from_pretrained("out/")             # or a hub id: "timm/crossvit_15_240.in1k"
    timm.create_model("crossvit_15_240", pretrained=True, num_classes=10,
                      pretrained_cfg_overlay=dict(file="out/model.safetensors", num_classes=10))  # same logits

The tensors are written in timm's key layout (``pos_embed_0``), so timm reads the file as it is. ``config.json``
holds timm's fields (``architecture``, ``num_classes``, ``num_features``, ``global_pool``, ``pretrained_cfg`` with
the preprocessing, ``label_names``) plus ``crossvit_config``: the full architecture, so the ablation models that
timm lacks load back exactly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..models.config import CrossViTConfig
from ..models.model import CrossViT
from ..models.preprocess import data_config, eval_transform
from ..models.registry import PretrainedCfg, get_entry, list_models, resolve_name
from ..models.single import build_model
from ..models.timm_model import TimmClassifier, TimmConfig
from .model_card import CARD_NAME, card_text, model_stats
from .weights import CheckpointError, file_sha256, load_into, read_state_dict, to_timm_state_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Storage precision of a release's floating tensors; they load back into an fp32 model (load_state_dict casts).
WEIGHT_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# config.json entries that describe how the weights were made rather than the architecture: a re-saved copy keeps them
CARRIED_KEYS = ("training", "multi_label", "threshold")


def _architecture_name(model: CrossViT) -> str:
    """The registered name whose architecture equals this model's (ignoring classes/size), else ``crossvit``."""
    name = getattr(model, "architecture", None)
    if name:
        return name

    def arch(c: CrossViTConfig) -> dict[str, Any]:  # fields that fix the architecture, not size/classes/dropout
        skip = ("num_classes", "img_size", "global_pool", "dynamic_img_size") + tuple(
            k for k in c.to_dict() if k.endswith("_rate")
        )
        return {k: v for k, v in c.to_dict().items() if k not in skip}

    mine = arch(model.cfg)
    return next((n for n in list_models() if arch(get_entry(n).cfg) == mine), "crossvit")


def save_pretrained(
    model: CrossViT,
    save_dir: str | Path,
    label_names: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    card_source: str | None = None,
    weights_dtype: str = "fp32",
) -> Path:
    """Write ``model.safetensors`` (timm layout), ``config.json`` and the model card ``README.md``, each atomically.

    ``extra`` entries go into config.json; ``extra["training"]`` (the trainer writes it) is the run's recipe and
    accuracy that the card states. ``card_source``: where the card's usage snippet loads from (default save_dir).
    ``weights_dtype``: fp32, or fp16 / bf16 for a file half the size (integer buffers stay as they are).
    """
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights dtype {weights_dtype!r}: choose one of {', '.join(WEIGHT_DTYPES)}")
    dtype = WEIGHT_DTYPES[weights_dtype]
    from safetensors.torch import save_file  # loaded on first use (slow import)

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    if label_names is None:
        label_names = getattr(model, "label_names", None)
    if label_names is not None and len(label_names) != model.num_classes:
        raise ValueError(f"label_names has {len(label_names)} entries but the model has {model.num_classes} classes")
    dc = data_config(model)
    if isinstance(model, TimmClassifier):
        config, sd = _timm_release(model, dc)
    else:
        config, sd = _crossvit_release(model, dc)
    if label_names is not None:
        config["label_names"] = list(label_names)
    released = getattr(model, "released_weights", None)
    if released is not None and released.num_classes == model.num_classes:  # still the released ImageNet classifier
        config["training"] = {
            "dataset_id": "imagenet-1k", "data_description": "ImageNet-1k", "top1": released.top1,
            "note": f"the official release's weights ({released.url}); top-1 as timm measured it",
        }  # fmt: skip
    if extra:
        config.update(extra)
    config["model_stats"] = model_stats(model)
    config["weights_dtype"] = weights_dtype
    sd = {k: (v.to(dtype) if v.is_floating_point() else v).detach().to("cpu").contiguous() for k, v in sd.items()}
    _atomic_write(save_dir / WEIGHTS_NAME, lambda p: save_file(sd, p, metadata={"format": "pt"}))
    # The config is written last and names the weights' digest: a damaged or mismatched pair is caught on load.
    config["weights_sha256"] = file_sha256(save_dir / WEIGHTS_NAME)
    _atomic_write(save_dir / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    write_card(save_dir, card_source, config)
    return save_dir


def _preprocessing(model: nn.Module, dc: dict[str, Any]) -> dict[str, Any]:
    """timm's pretrained_cfg fields for the preprocessing ``dc`` (a data config)."""
    return {
        "tag": "custom",
        "custom_load": False,
        "input_size": list(dc["input_size"]),
        "fixed_input_size": not model.cfg.dynamic_img_size,
        "interpolation": dc["interpolation"],
        "crop_pct": dc["crop_pct"],
        "crop_mode": dc["crop_mode"],
        "mean": list(dc["mean"]),
        "std": list(dc["std"]),
        "num_classes": model.num_classes,
    }


def _timm_release(model: TimmClassifier, dc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """timm's own hub layout: its architecture name, its state dict; ``timm_config`` rebuilds it exactly here."""
    net = model.net
    own = getattr(net, "pretrained_cfg", None) or {}
    pretrained_cfg = _preprocessing(model, dc) | {
        k: own[k] for k in ("pool_size", "first_conv", "classifier") if k in own
    }
    config = {
        "architecture": model.cfg.name,
        "num_classes": model.num_classes,
        "num_features": int(getattr(net, "num_features", 0)),
        "model_args": {**model.cfg.model_args},
        "pretrained_cfg": pretrained_cfg,
        "timm_config": model.cfg.to_dict(),
    }
    return config, net.state_dict()


def _crossvit_release(model: CrossViT, dc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    arch = _architecture_name(model)
    pretrained_cfg = {
        **_preprocessing(model, dc),
        "pool_size": None,
        "first_conv": ["patch_embed.0.proj", "patch_embed.1.proj"],
        "classifier": ["head.0", "head.1"],
    }
    config = {
        "architecture": arch,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": model.global_pool,
        "model_args": {"img_size": list(model.cfg.img_size)},
        "pretrained_cfg": pretrained_cfg,
        "crossvit_config": model.cfg.to_dict(),
    }
    return config, to_timm_state_dict(model.state_dict())


def write_card(release_dir: str | Path, source: str | None = None, config: dict[str, Any] | None = None) -> Path:
    """(Re)write ``README.md`` of a release dir from its config.json; the snippet loads from ``source``."""
    release_dir = Path(release_dir)
    config = config if config is not None else load_config(release_dir / CONFIG_NAME)
    text = card_text(config, str(release_dir) if source is None else source)
    _atomic_write(release_dir / CARD_NAME, lambda p: Path(p).write_text(text))
    return release_dir / CARD_NAME


def _atomic_write(dst: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_release_dir(name_or_path: str | Path, cache_dir: str | None = None) -> Path:
    """The local directory of a release: ``name_or_path`` itself, its ``config.json``'s folder, or a hub id fetched."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    if p.is_file() and p.name == CONFIG_NAME:
        return p.parent
    s = str(name_or_path)
    # "runs/demo" where ./runs exists is a local path with a typo, not a hub id: fail now, not after network retries
    local = p.exists() or s.startswith((".", "/")) or s.count("/") != 1 or Path(s.split("/")[0]).is_dir()
    if local:
        raise FileNotFoundError(f"{name_or_path}: not a directory holding {CONFIG_NAME} and {WEIGHTS_NAME}")
    from huggingface_hub import hf_hub_download  # a hub id such as "timm/crossvit_15_240.in1k"

    repo = s.removeprefix("hf-hub:")
    try:
        cfg_file = hf_hub_download(repo, CONFIG_NAME, cache_dir=cache_dir)
        hf_hub_download(repo, WEIGHTS_NAME, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, missing file: one message naming the input
        why = str(e).splitlines()[0] if str(e) else ""
        raise FileNotFoundError(
            f"{name_or_path}: no such local directory, and not fetched as a hub id ({type(e).__name__}: {why})"
        ) from None
    return Path(cfg_file).parent


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a release ``config.json``; errors name the file."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: missing; a release directory holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or "architecture" not in config and "crossvit_config" not in config:
        raise CheckpointError(f"{path}: not a model config (no 'architecture' or 'crossvit_config')")
    return config


def config_from_release(config: dict[str, Any], source: str = CONFIG_NAME) -> CrossViTConfig | TimmConfig:
    """The architecture a release config records: ours in full, a timm model trained here, or timm's own layout."""
    for key, kind in (("crossvit_config", CrossViTConfig), ("timm_config", TimmConfig)):
        if key in config:
            try:
                return kind.from_dict(config[key])
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{source}: bad {key}: {e}") from None
    arch = config["architecture"]
    try:
        name = resolve_name(arch)
    except ValueError as e:
        try:  # a timm release of another family (e.g. the hub's timm/resnet18.a1_in1k)
            cfg = TimmConfig.for_name(arch)
        except ValueError:
            raise CheckpointError(
                f"{source}: architecture {arch!r} is neither a CrossViT nor a timm model: {e}"
            ) from None
        size = config.get("pretrained_cfg", {}).get("input_size", [])[1:]
        return cfg.replace(
            num_classes=int(config.get("num_classes", cfg.num_classes)), **({"img_size": tuple(size)} if size else {})
        )
    cfg = get_entry(name).cfg
    changes: dict[str, Any] = {"num_classes": int(config.get("num_classes", cfg.num_classes))}
    size = config.get("model_args", {}).get("img_size") or config.get("pretrained_cfg", {}).get("input_size", [])[1:]
    if size:
        changes["img_size"] = tuple(size)
    return cfg.replace(**changes)


def from_pretrained(
    name_or_path: str | Path,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    cache_dir: str | None = None,
    pretrained_cfg: PretrainedCfg | None = None,
    **overrides: Any,
) -> CrossViT:
    """Load a release directory (or hub id) written by :func:`save_pretrained` or by timm.

    ``num_classes``/``img_size`` give a new head / resolution (position embeddings resized bicubically).
    The model carries ``pretrained_cfg`` (a :class:`PretrainedCfg`: the preprocessing) and ``label_names`` from
    the config; ``pretrained_cfg`` replaces the one the release records.
    """
    d = resolve_release_dir(name_or_path, cache_dir)
    cfg_path = d / CONFIG_NAME
    config = load_config(cfg_path)
    cfg = config_from_release(config, str(cfg_path))
    saved_cfg = cfg
    cfg = cfg.with_overrides(num_classes=num_classes, img_size=img_size, **overrides)
    weights = d / WEIGHTS_NAME
    if not weights.exists():
        alt = d / "pytorch_model.bin"
        if not alt.exists():
            raise FileNotFoundError(f"{weights}: missing (next to {cfg_path})")
        weights = alt
    expected = config.get("weights_sha256")
    if expected and weights.name == WEIGHTS_NAME and file_sha256(weights) != expected:
        raise CheckpointError(
            f"{weights}: its sha256 differs from the one {cfg_path} records: the file is damaged or was replaced"
        )
    if isinstance(cfg, TimmConfig):  # timm's own keys and head: load as saved, then give it the new head
        model = TimmClassifier(cfg.replace(num_classes=saved_cfg.num_classes))
        model.load_weights(read_state_dict(weights), source=str(weights))
        model.reset_classifier(cfg.num_classes)
    else:
        model = build_model(cfg)
        load_into(model, read_state_dict(weights), source=str(weights))
    pc = dict(config.get("pretrained_cfg", {}))
    if img_size is not None:
        pc["input_size"] = [cfg.in_chans, *cfg.img_size]
    model.pretrained_cfg = pretrained_cfg or (PretrainedCfg.from_dict(pc) if pc else None)
    labels = config.get("label_names")
    model.label_names = list(labels) if labels and cfg.num_classes == saved_cfg.num_classes else None
    if isinstance(model, CrossViT):
        model.architecture = config.get("architecture") if config.get("architecture") != "crossvit" else None
    # a multi-label model scores each label by its own sigmoid: predict thresholds, validate refuses top-1
    model.multi_label = bool(config.get("multi_label", False))
    model.threshold = float(config.get("threshold", 0.5))
    # an int8 release (crossvit.runtime.int8): the quantized network's files, next to the weights
    meta = config.get("int8")
    model.int8 = {**meta, "dir": str(d)} if isinstance(meta, dict) else None
    return model


__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "config_from_release",
    "data_config",
    "eval_transform",
    "from_pretrained",
    "load_config",
    "save_pretrained",
    "write_card",
]
