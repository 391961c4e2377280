"""Fast paths for running and training a CrossViT, behind simple switches.

    import crossvit
    from crossvit.runtime.fast import to_inference
    model = crossvit.create_model("crossvit_15_240")
    fast = to_inference(model, precision="bf16", compile=True)  # or model.to_inference(...)
    logits = fast(images)  # fp32 images in, fp32 logits out

What each switch does (measured in docs/performance.md, ``crossvit benchmark``):
    precision="bf16"  weights and activations in bfloat16 (AMX / AVX512-BF16 GEMMs on CPU); inputs are cast on
                      the way in, logits come back as fp32. "fp16" is offered for CUDA.
    compile=True      ``torch.compile`` with Inductor's *freezing* (weights become constants: folded, pre-packed
                      for oneDNN, and the LayerNorm / GELU / residual adds fused around the GEMMs).
    attention         "auto" picks the attention kernel per device / precision / mode (see :func:`pick_attention`).

``prepare_training`` chooses the attention kernel for a training run and can compile the model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from . import openvino_cpu
from .int8 import Int8Model, load_int8, quantize

Precision = Literal["fp32", "bf16", "fp16", "int8"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_of(precision: str) -> torch.dtype:
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
    return DTYPES[precision]


def pick_attention(device: torch.device | str, precision: str, training: bool) -> Literal["sdpa", "tiled"]:
    """The attention kernel that measured fastest for CrossViT shapes (tokens 50-600, head dim 16-64).

    CPU inference: SDPA (its flash kernel beats matmul + softmax + matmul in fp32 and bf16 by 1.3-2.7x).
    CPU training in bf16: explicit matmuls, in cache-sized tiles where there are many tokens ("tiled"); the CPU
    flash-attention *backward* in bf16 is the slow part of a small model's step (more than half of it), while the
    matmul backward runs on the same bf16 GEMMs as the linear layers, and tiling keeps the N x N scores in cache
    (1.5-2x over whole-batch matmuls for 145-401 tokens, docs/performance.md). CPU training in fp32 and everything
    on CUDA: SDPA.
    """
    dev = torch.device(device).type
    if dev == "cpu" and training and precision in ("bf16", "fp16"):
        return "tiled"
    return "sdpa"


def _set_attention(model: nn.Module, impl: str) -> None:
    if hasattr(model, "set_attention_impl"):
        model.set_attention_impl(impl)


class InferenceModel(nn.Module):
    """A frozen CrossViT in one precision, optionally compiled. Takes fp32 images, returns fp32 logits.

    The wrapped model is reachable as ``.model`` (its ``cfg``, ``pretrained_cfg`` and ``label_names`` too).
    """

    def __init__(self, model: nn.Module, precision: str, compiled: bool) -> None:
        super().__init__()
        self.model = model
        self.precision = precision
        self.dtype = dtype_of(precision)
        self.compiled = compiled
        self._run = torch.compile(model, dynamic=False) if compiled else model

    @property
    def cfg(self):  # noqa: ANN201 - the wrapped model's CrossViTConfig
        return self.model.cfg

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self._run(x.to(self.dtype)).float()

    def extra_repr(self) -> str:
        return f"precision={self.precision}, compiled={self.compiled}"


def to_inference(
    model: nn.Module,
    precision: Precision = "bf16",
    compile: bool = False,
    attention: Literal["auto", "sdpa", "math", "tiled"] = "auto",
    runtime: Literal["torch", "openvino"] = "torch",
    calibration: object = None,
) -> InferenceModel | OpenVINOModel | Int8Model:
    """Turn a model into its fast inference form. The model is converted in place (eval, no grads, cast).

    Args:
        precision: "fp32" (answers within 1e-5 of the plain model), "bf16" (top-1 agrees with fp32 on real images;
            see docs/performance.md) or "fp16" (CUDA).
        compile: ``torch.compile`` with Inductor freezing. Costs tens of seconds on the first call (and again for
            each new batch size); pays off for long runs.
        attention: "auto" (see :func:`pick_attention`), or force "sdpa" / "math" / "tiled".
        runtime: "torch", or "openvino" (CPU, optional dependency; fastest for small models and batch 1 on CPUs
            without AMX, see docs/performance.md). ``compile`` does not apply to it.
        calibration: for precision="int8" (runtime "openvino" only): images to quantize with NNCF (a folder, a
            list of paths / PIL images, or an (N, C, H, W) preprocessed tensor; :mod:`crossvit.runtime.int8`).
            Without it, the int8 network of a model loaded from an int8 release (``crossvit quantize``) is used.
    """
    if precision == "int8":
        if runtime != "openvino":
            raise ValueError(f"precision 'int8' runs on runtime='openvino' (NNCF quantization), got {runtime!r}")
        return load_int8(model) if calibration is None else quantize(model, calibration)
    if runtime == "openvino":
        return OpenVINOModel(model, precision)
    if runtime != "torch":
        raise ValueError(f"runtime must be 'torch' or 'openvino', got {runtime!r}")
    dtype = dtype_of(precision)
    model.eval().requires_grad_(False)
    model.to(dtype)
    device = next(model.parameters()).device
    _set_attention(model, pick_attention(device, precision, False) if attention == "auto" else attention)
    if compile:
        import torch._inductor.config as inductor_config  # loaded on first use (slow import)

        # Freezing treats parameters as constants: constant folding and oneDNN weight pre-packing on CPU. It only
        # applies to graphs compiled without autograd, i.e. to inference; training compiles are unaffected.
        inductor_config.freezing = True
    return InferenceModel(model, precision, compile)


class OpenVINOModel(openvino_cpu.Network):
    """The model compiled by OpenVINO for the CPU (``pip install openvino``). fp32 images in, fp32 logits out.

    One compiled network per batch size (static shapes are faster than a dynamic batch); the first call with a new
    batch size compiles it (about a second). ``precision="bf16"`` sets OpenVINO's inference precision hint.
    """

    def __init__(self, model: nn.Module, precision: Precision = "bf16", threads: int | None = None) -> None:
        openvino_cpu.core()  # the clear error when openvino is not installed, before any work
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"openvino runtime: precision must be fp32 or bf16, got {precision!r}")
        self.model = model.float().eval()
        self.cfg = model.cfg
        self.precision = precision
        self._config = {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        self._ov_model = openvino_cpu.convert(self.model)
        self._compiled: dict[int, object] = {}


COMPILE_MODES = ("default", "max-autotune")


def compile_training(model: nn.Module, mode: str = "default") -> nn.Module:
    """``torch.compile`` for a training step. ``max-autotune`` also times Inductor's GEMM templates against the
    ATen (oneDNN / cuBLAS) kernel for every matrix shape and keeps the faster, with its elementwise epilogue fused:
    minutes more compilation, a faster step where the templates win (docs/performance.md).
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "default":
        return torch.compile(model)
    if next(model.parameters()).device.type == "cpu":  # the CPU's templates are C++ ("CPP"); Triton is GPU-only
        return torch.compile(model, options={"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"})
    return torch.compile(model, mode="max-autotune-no-cudagraphs")  # graphs of a training step are re-recorded


def prepare_training(
    model: nn.Module,
    precision: Precision = "fp32",
    compile: bool = False,
    attention: Literal["auto", "sdpa", "math", "tiled"] = "auto",
    compile_mode: str = "default",
) -> nn.Module:
    """Pick the attention kernel for training in ``precision`` (autocast), optionally compile (``compile_mode``:
    see :func:`compile_training`). Returns the module to call in the training loop (the compiled wrapper shares
    parameters with ``model``; optimise/save ``model``).
    """
    dtype_of(precision)
    device = next(model.parameters()).device
    _set_attention(model, pick_attention(device, precision, True) if attention == "auto" else attention)
    return compile_training(model, compile_mode) if compile else model


__all__ = [
    "COMPILE_MODES",
    "DTYPES",
    "InferenceModel",
    "Int8Model",
    "OpenVINOModel",
    "compile_training",
    "dtype_of",
    "pick_attention",
    "prepare_training",
    "to_inference",
]
