"""int8 CrossViT on the CPU: NNCF post-training quantization of the OpenVINO model, kept as a release directory.

    from crossvit.runtime.fast import to_inference
    fast = to_inference(model, precision="int8", runtime="openvino", calibration="data/train")  # quantizes now
    crossvit.cli.quantize.save_int8_release(model, fast, "runs/x/int8")   # what ``crossvit quantize`` writes
    model = crossvit.from_pretrained("runs/x/int8")     # fp32 weights + the int8 OpenVINO IR
    fast = to_inference(model, precision="int8", runtime="openvino")                            # the saved IR

An int8 release is an ordinary release (``config.json`` + ``model.safetensors``, the fp32 weights it was quantized
from, so torch tools and the attention maps still work) plus ``openvino_int8.xml/.bin`` and an ``int8`` entry in
``config.json`` naming them with the digest of the ``.bin``. Calibration images go through the model's own
evaluation transform. The operations NNCF leaves in floating point (softmax, LayerNorm, GELU, residual adds) run in
fp32.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.images import ImageReadError, as_pil, expand_paths
from ..io.weights import CheckpointError, file_sha256
from ..models.preprocess import eval_transform
from . import openvino_cpu

log = logging.getLogger("crossvit")

INT8_KEY = "int8"  # config.json entry of an int8 release
IR_XML, IR_BIN = "openvino_int8.xml", "openvino_int8.bin"
DEFAULT_CALIBRATION = 300  # images; NNCF's own default subset size


def calibration_arrays(model: nn.Module, source: Any, limit: int = DEFAULT_CALIBRATION, seed: int = 0) -> list:
    """Up to ``limit`` preprocessed images as (1, C, H, W) float32 arrays, the model's own evaluation transform.

    ``source``: a folder (searched recursively; a seeded random sample, so an ImageFolder tree gives every class,
    not the first one alphabetically), a list of paths / PIL images / arrays, or an (N, C, H, W) tensor that is
    already preprocessed. Unreadable files are skipped with a warning; none readable is an error.
    """
    if limit < 1:
        raise ValueError(f"calibration size must be >= 1, got {limit}")
    if isinstance(source, torch.Tensor):
        if source.ndim != 4:
            raise ValueError(f"calibration tensor must be (N, C, H, W), got shape {tuple(source.shape)}")
        return [source[i : i + 1].float().numpy() for i in range(min(limit, source.shape[0]))]
    if isinstance(source, (str, Path)):
        if not Path(source).exists():
            raise FileNotFoundError(f"{source}: calibration folder not found")
        items: list = expand_paths([source])
        if not items:
            raise ValueError(f"{source}: no image files for calibration")
        if len(items) > limit:
            items = sorted(random.Random(seed).sample(items, limit), key=str)
    elif isinstance(source, Iterable):
        items = list(source)[:limit]
    else:
        raise TypeError(f"calibration must be a folder, a list of images or a tensor, got {type(source).__name__}")
    tf = eval_transform(model)
    out = []
    for it in items:
        try:
            out.append(tf(as_pil(it)).unsqueeze(0).numpy())  # (1, C, H, W)
        except ImageReadError as e:
            log.warning("calibration: skipped %s", e)
    if not out:
        raise ValueError(f"{source}: none of the {len(items)} calibration images could be read")
    return out


class Int8Model(openvino_cpu.Network):
    """An NNCF-quantized OpenVINO network for the CPU: fp32 images in, fp32 logits out (as ``fast.OpenVINOModel``).

    ``.model`` is the fp32 CrossViT it came from (metadata, preprocessing, attention maps); ``.ov_model`` the
    quantized network, compiled once per batch size on first use.
    """

    def __init__(self, model: nn.Module, ov_model: Any, threads: int | None = None, calibration_images: int = 0):
        self.model = model.float().eval()
        self.cfg = model.cfg
        self.precision = "int8"
        self.calibration_images = calibration_images
        self._config = {
            # the operations NNCF leaves in floating point stay fp32: OpenVINO's default on AMX CPUs (bf16) cost
            # the released CIFAR-10 model another 0.25 points of top-1 (64.55% vs 64.80%, fp32 65.20%)
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        self._ov_model = ov_model
        self._compiled: dict[int, object] = {}

    @property
    def ov_model(self) -> Any:
        return self._ov_model


def quantize(
    model: nn.Module, calibration: Any, subset_size: int = DEFAULT_CALIBRATION, threads: int | None = None
) -> Int8Model:
    """NNCF post-training quantization (transformer preset: int8 weights and activations around the matmuls)."""
    try:
        import nncf  # optional dependency: pip install "crossvit[int8]"
    except ImportError as e:
        raise ValueError('precision int8 needs NNCF: pip install nncf (or "crossvit[int8]")') from e
    model = model.float().eval()
    arrays = calibration_arrays(model, calibration, subset_size)
    log.info("quantizing with %d calibration images", len(arrays))
    with openvino_cpu.routed_core():
        q = nncf.quantize(
            openvino_cpu.convert(model),
            nncf.Dataset(arrays),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(arrays),
        )
    return Int8Model(model, q, threads, len(arrays))


def load_int8(model: nn.Module, threads: int | None = None) -> Int8Model:
    """The int8 network saved next to ``model``'s weights by :func:`save_int8_release` (digest checked)."""
    meta = getattr(model, "int8", None)
    if not meta:
        raise ValueError(
            "precision int8: this model has no int8 network; pass calibration= images to quantize it, or load a "
            "release written by `crossvit quantize`"
        )
    d = Path(meta["dir"])
    xml, bin_ = d / meta.get("ir", IR_XML), d / meta.get("ir_weights", IR_BIN)
    for f in (xml, bin_):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing from the int8 release {d}")
    if meta.get("ir_sha256") and file_sha256(bin_) != meta["ir_sha256"]:
        raise CheckpointError(f"{bin_}: its sha256 differs from the one {d / 'config.json'} records")
    ov_model = openvino_cpu.core().read_model(str(xml))
    return Int8Model(model, ov_model, threads, int(meta.get("calibration_images", 0)))


def is_int8(model: Any) -> bool:
    """Whether ``model`` (or the CrossViT inside a fast wrapper) carries an int8 network."""
    return bool(getattr(getattr(model, "model", model), "int8", None))


def pick_precision(model: nn.Module, precision: str | None, runtime: str | None) -> tuple[str, str]:
    """The (precision, runtime) a tool runs when the user gave ``precision`` / ``runtime`` (None: not given).

    An int8 release runs int8 on OpenVINO by default; int8 is only offered on OpenVINO.
    """
    if precision is None:
        precision = "int8" if is_int8(model) else "fp32"
    if precision == "int8":
        if runtime not in (None, "openvino"):
            raise ValueError(f"--precision int8 runs on OpenVINO; drop --runtime {runtime} or pass --runtime openvino")
        return precision, "openvino"
    return precision, runtime or "torch"


__all__ = [
    "INT8_KEY",
    "Int8Model",
    "calibration_arrays",
    "is_int8",
    "load_int8",
    "pick_precision",
    "quantize",
]
