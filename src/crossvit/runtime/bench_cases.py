"""The paths ``crossvit benchmark`` times: our model (eager, compiled, OpenVINO, int8) and its peers (timm,
ONNX Runtime, OpenVINO) holding the same weights, for inference and for training steps."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..io.factory import create_model
from ..io.weights import normalize_state_dict, to_timm_state_dict
from .bench import Case
from .fast import OpenVINOModel, dtype_of, prepare_training, to_inference
from .inference import load_model
from .int8 import is_int8, load_int8, quantize
from .openvino_cpu import compile_model

# ``--model cifar``: the registry's CIFAR-10 model (32-px images upsampled to 36 px, 144 + 64 tokens)
CIFAR_MODEL = "crossvit_cifar_36"


def build_models(
    name: str, use_timm: bool, drop_path: float, checkpoint: str | None = None
) -> tuple[nn.Module, nn.Module | None]:
    """Our model and timm's with identical weights: timm's random init copied into ours, or the weights of
    ``checkpoint`` (any model source; ``name`` is the architecture of a bare weights file) in both."""
    torch.manual_seed(0)
    if checkpoint is None and Path(name).is_dir():
        checkpoint, name = name, None
    if checkpoint is not None:  # an int8 release brings its quantized network; timm gets the same fp32 weights
        ours = load_model(checkpoint, name)
        if not use_timm:
            return ours, None
        ref = _timm_model(ours.cfg).eval()
        ref.load_state_dict(to_timm_state_dict(ours.state_dict()), strict=True)
        return ours, ref
    cfg = create_model(CIFAR_MODEL if name == "cifar" else name).cfg.replace(drop_path_rate=drop_path)
    ours = create_model(cfg)
    if not use_timm:
        return ours, None
    ref = _timm_model(cfg)
    ours.load_state_dict(normalize_state_dict(ref.state_dict()), strict=True)
    return ours, ref


def _timm_model(cfg) -> nn.Module:  # noqa: ANN001 - CrossViTConfig
    from timm.models.crossvit import CrossVit  # loaded on first use (slow import)

    if cfg.fusion != "cross_attn" or not cfg.cls_token or cfg.cross_reattend:
        raise ValueError("timm has only the released CrossViT (cross-attention fusion with CLS tokens)")
    depth = [[cfg.small_depth, cfg.large_depth, 0 if cfg.cross_depth == 1 else cfg.cross_depth]] * cfg.num_encoders
    sizes = cfg.branch_img_size
    return CrossVit(
        img_size=cfg.img_size[0],
        img_scale=tuple(s[0] / cfg.img_size[0] for s in sizes),
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=depth,
        num_heads=cfg.num_heads,
        mlp_ratio=(*cfg.mlp_ratio, cfg.mlp_ratio[-1]),
        multi_conv=cfg.multi_conv,
        qkv_bias=cfg.qkv_bias,
        num_classes=cfg.num_classes,
        drop_path_rate=cfg.drop_path_rate,
    )


def _set_timm_fused(model: nn.Module, on: bool) -> nn.Module:
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = on
    return model


def inference_cases(
    ours: nn.Module, ref: nn.Module | None, peers: list[str], batches: list[int], precisions: list[str],
    compile_: bool, device: torch.device, threads: int, runtimes: list[str],
) -> tuple[list[Case], list[str]]:  # fmt: skip
    notes: list[str] = []
    size = ours.cfg.img_size
    images = {b: torch.randn(b, ours.cfg.in_chans, *size, device=device) for b in batches}
    cache: dict[str, object] = {}

    def once(key: str, build: Callable[[], object]) -> object:
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def ours_case(prec: str, comp: bool) -> Callable[[int], Callable[[], Callable[[], object]]]:
        def per_batch(b: int) -> Callable[[], Callable[[], object]]:
            def make() -> Callable[[], object]:
                fast = once(f"ours-{prec}-{comp}", lambda: to_inference(copy.deepcopy(ours), prec, compile=comp))
                x = images[b]
                return lambda: fast(x)

            return make

        return per_batch

    def timm_case(prec: str, how: str) -> Callable[[int], Callable[[], Callable[[], object]]]:
        dtype = dtype_of(prec)

        def build() -> Callable[[torch.Tensor], torch.Tensor]:
            m = copy.deepcopy(ref).eval().requires_grad_(False)
            if how == "autocast":
                return lambda x: _autocast_call(m, x, dtype, device)
            m = m.to(dtype)
            if how == "compile":
                import torch._inductor.config as inductor_config  # loaded on first use (slow import)

                inductor_config.freezing = True
                m = torch.compile(m, dynamic=False)
            return lambda x: _nograd(m, x.to(dtype))

        def per_batch(b: int) -> Callable[[], Callable[[], object]]:
            def make() -> Callable[[], object]:
                f = once(f"timm-{prec}-{how}", build)
                x = images[b]
                return lambda: f(x)

            return make

        return per_batch

    def ours_ov_case(prec: str) -> Callable[[int], Callable[[], Callable[[], object]]]:
        def per_batch(b: int) -> Callable[[], Callable[[], object]]:
            def make() -> Callable[[], object]:
                fast = once(f"ours-ov-{prec}", lambda: OpenVINOModel(copy.deepcopy(ours), prec, threads))
                x = images[b]
                return lambda: fast(x)

            return make

        return per_batch

    def ours_int8_case() -> Callable[[int], Callable[[], Callable[[], object]]]:
        def build() -> object:
            if is_int8(ours):  # an int8 release: its own network
                return load_int8(copy.deepcopy(ours), threads)
            # random weights: calibrate on random images (speed does not depend on the calibration data)
            calib = torch.randn(32, ours.cfg.in_chans, *size, generator=torch.Generator().manual_seed(0))
            return quantize(copy.deepcopy(ours).cpu(), calib, 32, threads)

        def per_batch(b: int) -> Callable[[], Callable[[], object]]:
            def make() -> Callable[[], object]:
                fast = once("ours-ov-int8", build)
                x = images[b]
                return lambda: fast(x)

            return make

        return per_batch

    rows: list[tuple[str, str, str, Callable]] = []
    for prec in precisions:
        if prec == "int8":
            if "openvino" in runtimes and device.type == "cpu":
                rows.append(("ours openvino int8 (NNCF)", "ours", prec, ours_int8_case()))
            else:
                notes.append("int8: runs on OpenVINO on the CPU only; skipped")
            continue
        tag = "" if prec == "fp32" else f" {prec}"
        if "torch" in runtimes:
            rows.append((f"ours{tag} eager", "ours", prec, ours_case(prec, False)))
        if "torch" in runtimes and compile_:
            rows.append((f"ours{tag} compile+freeze", "ours", prec, ours_case(prec, True)))
        if "timm" in peers and ref is not None:
            if prec == "fp32":
                rows.append(("timm eager", "timm", prec, timm_case(prec, "cast")))
            else:
                rows.append((f"timm {prec} autocast", "timm", prec, timm_case(prec, "autocast")))
                rows.append((f"timm cast {prec}", "timm", prec, timm_case(prec, "cast")))
            if compile_ and prec != "fp32":  # the peer list: timm compiled in bf16 only
                rows.append((f"timm{tag} compile+freeze", "timm", prec, timm_case(prec, "compile")))
        if "onnxruntime" in peers and prec == "fp32" and ref is not None:
            if device.type != "cpu":
                notes.append("onnxruntime: skipped (CPU provider only here)")
            else:
                rows.append(("onnxruntime fp32", "onnxruntime", prec, _ort_case(ref, size, threads, once)))
        if "openvino" in runtimes and prec in ("fp32", "bf16") and device.type == "cpu":
            rows.append((f"ours openvino {prec}", "ours", prec, ours_ov_case(prec)))
        if "openvino" in peers and prec in ("fp32", "bf16") and ref is not None and device.type == "cpu":
            rows.append((f"openvino {prec}", "openvino", prec, _ov_case(ref, size, prec, threads, once)))
    cases = []
    for b in batches:
        for label, group, prec, factory in rows:
            cases.append(Case(label, group, prec, b, factory(b)))
    return cases, notes


def _nograd(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m(x)


def _autocast_call(m: nn.Module, x: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        return m(x)


def _ort_case(ref: nn.Module, size: tuple[int, int], threads: int, once: Callable) -> Callable:
    def build() -> object:
        import onnxruntime as ort  # optional dependency

        path = Path(tempfile.mkdtemp(prefix="crossvit-bench-")) / "timm.onnx"
        x = torch.randn(1, 3, *size)
        torch.onnx.export(
            copy.deepcopy(ref).eval(), (x,), str(path), input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def per_batch(b: int) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            sess = once("ort", build)
            x = torch.randn(b, 3, *size).numpy()
            return lambda: sess.run(None, {"images": x})

        return make

    return per_batch


def _ov_case(ref: nn.Module, size: tuple[int, int], prec: str, threads: int, once: Callable) -> Callable:
    def convert() -> object:
        import openvino as ov  # optional dependency

        with torch.no_grad():
            return ov.convert_model(copy.deepcopy(ref).eval(), example_input=torch.randn(1, 3, *size))

    def per_batch(b: int) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            model = once("ov-model", convert).clone()
            model.reshape([b, 3, *size])
            config = {
                "INFERENCE_PRECISION_HINT": "f32" if prec == "fp32" else "bf16",
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads,
            }
            compiled = compile_model(model, config)
            req = compiled.create_infer_request()
            x = torch.randn(b, 3, *size).numpy()
            return lambda: req.infer({0: x})

        return make

    return per_batch


def train_cases(
    ours: nn.Module, ref: nn.Module | None, peers: list[str], batches: list[int], precisions: list[str],
    compile_: bool, device: torch.device, compile_mode: str = "default",
) -> list[Case]:  # fmt: skip
    """Training-step rows; with ``compile_``, a compiled row, and with ``compile_mode`` max-autotune one more."""
    size, ncls = ours.cfg.img_size, ours.cfg.num_classes
    cases = []

    def step_factory(model_fn: Callable[[], tuple[nn.Module, nn.Module]], prec: str, fused_opt: bool, b: int):
        dtype = dtype_of(prec)

        def make() -> Callable[[], object]:
            params_owner, run = model_fn()
            params_owner.train()
            opt = torch.optim.AdamW(params_owner.parameters(), lr=1e-4, weight_decay=0.05, fused=fused_opt or None)
            g = torch.Generator().manual_seed(b)
            x = torch.randn(b, 3, *size, generator=g).to(device)
            y = torch.randint(0, ncls, (b,), generator=g).to(device)
            loss_fn = nn.CrossEntropyLoss()

            def step() -> float:
                with torch.autocast(device.type, dtype=dtype, enabled=prec != "fp32"):
                    loss = loss_fn(run(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss

            return step

        return make

    def ours_model(prec: str, comp: bool, mode: str = "default") -> Callable[[], tuple[nn.Module, nn.Module]]:
        def build() -> tuple[nn.Module, nn.Module]:
            m = copy.deepcopy(ours).to(device)
            return m, prepare_training(m, prec, compile=comp, compile_mode=mode)

        return build

    def timm_model(fused: bool) -> Callable[[], tuple[nn.Module, nn.Module]]:
        def build() -> tuple[nn.Module, nn.Module]:
            m = _set_timm_fused(copy.deepcopy(ref).to(device), fused)
            return m, m

        return build

    for b in batches:
        for prec in precisions:
            tag = "" if prec == "fp32" else f" {prec} autocast"
            cases.append(
                Case(f"ours{tag} eager", "ours", prec, b, step_factory(ours_model(prec, False), prec, True, b))
            )
            if compile_:
                cases.append(
                    Case(f"ours{tag} compiled", "ours", prec, b, step_factory(ours_model(prec, True), prec, True, b))
                )
                if compile_mode != "default":
                    step = step_factory(ours_model(prec, True, compile_mode), prec, True, b)
                    cases.append(Case(f"ours{tag} compiled {compile_mode}", "ours", prec, b, step))
            if "timm" in peers and ref is not None:
                for fused in (True, False):
                    label = f"timm{tag} {'sdpa' if fused else 'math'}"
                    cases.append(Case(label, "timm", prec, b, step_factory(timm_model(fused), prec, False, b)))
    return cases
