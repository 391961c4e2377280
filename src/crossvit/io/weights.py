"""Read CrossViT weights in any released layout and fit them to a model of another size or class count.

Layouts understood:
  * ours / the official release (IBM): ``pos_embed.0``, ``cls_token.0``, ...
  * timm: ``pos_embed_0``, ``cls_token_0``, ... (everything else is identical)
Wrappers (``model``, ``state_dict``, ``model_ema``, ``state_dict_ema``) and prefixes (``module.``,
``_orig_mod.``) are removed. ``.pth``/``.pt``/``.bin`` files are read with ``weights_only=True`` so a checkpoint
cannot run code; ``.safetensors`` are read natively.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..models.layers.pos_embed import resize_pos_embed

log = logging.getLogger("crossvit")

_TIMM_KEY = re.compile(r"^(pos_embed|cls_token)_(\d+)$")
_OURS_KEY = re.compile(r"^(pos_embed|cls_token)\.(\d+)$")
_WRAPPERS_EMA = ("model_ema", "state_dict_ema")
_WRAPPERS = ("model", "state_dict", "model_state", "module")
_PREFIXES = ("module.", "_orig_mod.", "model.")
# The first convolution of each branch's patch embedding: linear (one conv) or the three-conv "dagger" stem.
_FIRST_CONV = re.compile(r"^patch_embed\.\d+\.proj(\.0)?\.weight$")


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file and the reason."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (checkpoint sidecars and release configs record it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_torch_load(path: Path, advice: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain values only. A pickle that carries other Python objects
    (which could run code) is refused; any failure is a :class:`CheckpointError` naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader failure becomes one clear message
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds Python objects beyond tensors, which could run code "
                f"({msg[:200]}). {advice}"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {msg[:200]})") from None


def read_state_dict(path: str | Path, use_ema: bool = False) -> dict[str, Tensor]:
    """Tensors of a weights file, unwrapped and in our key layout."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # loaded on first use (slow import)

        try:
            obj: object = load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - every reader failure becomes one clear message
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {msg})") from None
    else:
        obj = safe_torch_load(
            path, "Convert it to .safetensors or re-save a plain state dict from a trusted environment."
        )
    return normalize_state_dict(obj, source=str(path), use_ema=use_ema)


def normalize_state_dict(obj: object, source: str = "state dict", use_ema: bool = False) -> dict[str, Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a dict of tensors, found {type(obj).__name__}")
    wrappers = (_WRAPPERS_EMA + _WRAPPERS) if use_ema else _WRAPPERS
    for w in wrappers:
        if isinstance(obj.get(w), dict):
            obj = obj[w]
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not sd:
        raise CheckpointError(f"{source}: holds no tensors (keys: {', '.join(list(map(str, obj))[:8])})")
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[_TIMM_KEY.sub(r"\1.\2", k)] = v
    return out


def to_timm_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our (= the official) layout -> timm's ``crossvit_*`` layout."""
    return {_OURS_KEY.sub(r"\1_\2", k): v for k, v in sd.items()}


def adapt_state_dict(sd: dict[str, Tensor], model: torch.nn.Module, source: str = "checkpoint") -> dict[str, Tensor]:
    """Fit ``sd`` to ``model``: resize position embeddings, drop heads of another class count.

    Raises :class:`CheckpointError` when the tensors do not belong to this architecture.
    """
    cfg = model.cfg
    target = model.state_dict()
    shared = set(sd) & set(target)
    if len(shared) < len(target) // 2:
        missing = sorted(set(target) - set(sd))[:5]
        raise CheckpointError(
            f"{source}: does not look like weights of this model ({len(shared)} of {len(target)} keys match; "
            f"missing e.g. {', '.join(missing)})"
        )
    sd = dict(sd)
    for i in range(2):
        k = f"pos_embed.{i}"
        if k in sd and sd[k].shape != target[k].shape:
            if sd[k].shape[-1] != target[k].shape[-1]:
                raise CheckpointError(f"{source}: {k} has width {sd[k].shape[-1]}, model has {target[k].shape[-1]}")
            old_n = sd[k].shape[1] - cfg.num_prefix_tokens
            try:
                sd[k] = resize_pos_embed(sd[k], cfg.grid_size[i], None, cfg.num_prefix_tokens)
            except ValueError as e:
                raise CheckpointError(f"{source}: {k}: {e}") from e
            log.info("resized %s from %d to %d patch tokens (bicubic)", k, old_n, cfg.num_patches[i])
    _adapt_input_convs(sd, target, source)
    head_keys = [k for k in target if k.startswith("head.")]
    mismatched = [k for k in head_keys if k in sd and sd[k].shape != target[k].shape]
    if mismatched or (any(k.startswith("head.") for k in sd) and not head_keys):
        n_old = next((sd[k].shape[0] for k in sd if k.startswith("head.") and k.endswith("bias")), "?")
        for k in [k for k in sd if k.startswith("head.")]:
            del sd[k]
        log.info(
            "new classifier: checkpoint has %s classes, model %d; loaded everything but the heads",
            n_old,
            cfg.num_classes,
        )
    for k, v in sd.items():
        if k in target and v.shape != target[k].shape:
            raise CheckpointError(f"{source}: {k} has shape {tuple(v.shape)}, model expects {tuple(target[k].shape)}")
    return sd


def _adapt_input_convs(sd: dict[str, Tensor], target: dict[str, Tensor], source: str) -> None:
    """Fit the first convolution of each branch to the model's channel count, in place (timm's adapt_input_conv:
    summed over the input channels for 1, repeated and scaled by 3 / C for C channels), so the weights of a model
    trained on RGB start a grey-scale or multispectral model instead of being refused."""
    from timm.models import adapt_input_conv  # loaded on first use (slow import)

    for k in [k for k in sd if _FIRST_CONV.match(k) and k in target]:
        w, want = sd[k], target[k]
        if w.ndim != 4 or w.shape[1] == want.shape[1] or w.shape[0] != want.shape[0] or w.shape[2:] != want.shape[2:]:
            continue  # same channels, or not a pure channel-count mismatch (reported below as a shape error)
        sd[k] = adapt_input_conv(want.shape[1], w, base_chans=w.shape[1])  # (O, C_old, p, p) -> (O, C_new, p, p)
        log.info("adapted %s from %d to %d input channels", k, w.shape[1], want.shape[1])


def load_into(model: torch.nn.Module, sd: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Adapt and load ``sd`` into ``model``; every missing or unexpected key is an error except new heads."""
    sd = adapt_state_dict(sd, model, source)
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )


def download_pretrained(hf_hub_id: str | None, url: str | None, cache_dir: str | None = None) -> Path:
    """Fetch released weights: timm's copy on the Hugging Face hub first, the official release URL second."""
    errors = []
    if hf_hub_id:
        try:
            from huggingface_hub import hf_hub_download  # loaded on first use (slow import)

            return Path(hf_hub_download(hf_hub_id, "model.safetensors", cache_dir=cache_dir))
        except Exception as e:  # noqa: BLE001 - fall through to the next source
            errors.append(f"hub {hf_hub_id}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if url:
        try:
            return Path(_download_url(url, cache_dir))
        except Exception as e:  # noqa: BLE001
            errors.append(f"{url}: {type(e).__name__}: {e}")
    raise CheckpointError("could not fetch pretrained weights (no network?): " + "; ".join(errors))


def _download_url(url: str, cache_dir: str | None) -> str:
    root = Path(cache_dir or Path(torch.hub.get_dir()) / "checkpoints")
    root.mkdir(parents=True, exist_ok=True)
    dst = root / url.rsplit("/", 1)[-1]
    if not dst.exists():
        torch.hub.download_url_to_file(url, str(dst), progress=False)
    return str(dst)
