"""``crossvit benchmark``: our model against timm, ONNX Runtime and OpenVINO, same weights, one process.

    crossvit benchmark --model crossvit_15_240 --batch-sizes 1,32 --precision fp32,bf16 --compile --json b.json
    crossvit benchmark --model crossvit_15_240 --train --batch-sizes 32 --precision fp32,bf16 --compile
    crossvit benchmark --model cifar --train --batch-sizes 256     # the 1.7 M-param CIFAR-size model, 32 px

Every path is set up and warmed up first (compile / export time is reported as setup), then the paths are timed
round-robin, ``--reps`` times, each time in a different order, and the median is kept: load on a shared machine
hits all paths alike and the ratios hold. The machine's GEMM peak (bf16 and fp32) is measured inside the same
loop; % of peak = model FLOPs (2 x ``count_macs``; 3 x that for a training step) x images/s / peak.

Peak memory: on CPU the resident set size (RSS) is sampled every ~1 ms by a thread during one call, after
``gc.collect()`` and glibc ``malloc_trim``, and reported as the rise above the level before the call
(activations, workspaces and, for training, gradients; the weights are loaded before). On CUDA it is
``torch.cuda.max_memory_allocated`` above the allocation before the call.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import importlib.util
import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("crossvit.benchmark")
PEERS = ("timm", "onnxruntime", "openvino")

# The CIFAR-size model of the issue: 32 px input, S branch upsampled to 36 px with 3 px patches (12 x 12 = 144
# tokens), L branch at 32 px with 4 px patches (8 x 8 = 64 tokens); widths 64 / 128, 4 heads, K=3, N=1, M=3.
CIFAR = dict(
    img_size=32,
    img_scale=(36 / 32, 1.0),
    patch_size=(3, 4),
    embed_dim=(64, 128),
    num_heads=(4, 4),
    mlp_ratio=(2.0, 2.0),
    num_encoders=3,
    small_depth=1,
    large_depth=3,
    num_classes=10,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="crossvit_15_240", help="registered name, 'cifar' (1.7 M params, 32 px) or a release dir"
    )
    p.add_argument("--batch-sizes", default="1,32", help="comma-separated (default 1,32)")
    p.add_argument(
        "--precision", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (CUDA), int8 (OpenVINO, NNCF)"
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile paths (ours and timm)")
    p.add_argument("--train", action="store_true", help="time training steps (fwd+bwd+AdamW) instead of inference")
    p.add_argument("--drop-path", type=float, default=0.1, help="drop-path rate of the training runs (0.1)")
    p.add_argument("--peers", default="timm,onnxruntime,openvino", help=f"subset of {','.join(PEERS)}, or 'none'")
    p.add_argument("--runtime", default="torch,openvino", help="our model's runtimes: torch and/or openvino (CPU)")
    p.add_argument("--reps", type=int, default=5, help="round-robin repetitions; the median is reported")
    p.add_argument("--min-time", type=float, default=0.3, help="seconds per timed sample (several calls if fast)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime (default torch's)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--json", type=Path, default=None, help="write all samples and ratios here")


# --- small helpers ---------------------------------------------------------------------------------------------
def _csv(value: str, option: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"{option}: empty list")
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise ValueError(f"{option}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def machine_info() -> dict:
    """CPU model and the flags that matter (AMX, AVX512-BF16), load average, library versions."""
    info: dict = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu"] = model
        info["cpu_flags"] = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags]
    except OSError:
        info["cpu"] = platform.processor()
    info["loadavg"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    for mod in ("timm", "onnxruntime", "openvino"):
        with contextlib.suppress(Exception):
            info[mod] = __import__(mod).__version__
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import psutil

        return psutil.Process().memory_info().rss


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Rise of memory above its level before one call of ``fn`` (see the module docstring)."""
    _trim()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        fn()
    finally:
        done.set()
        th.join()
    return max(0, max(peak[0], _rss()) - base) / 2**20


def gemm_gflops(dtype: torch.dtype, device: torch.device, n: int) -> float:
    """GFLOP/s of one n x n x n matrix product (best of 3)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    with torch.no_grad():
        torch.mm(a, b)
        for _ in range(3):
            _sync(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def gemm_size(dtype: torch.dtype, device: torch.device, target_s: float = 0.2) -> int:
    """The n of the peak GEMM, sized to this machine: one product takes about ``target_s`` (n in 256..2048 on CPU).

    A fixed 2048^3 bf16 product takes 0.02 s with AMX but 13 s on a CPU without native bf16 (about 1.3 GFLOP/s),
    and it runs 4 times per rep. A 256^3 probe gives the rate; small n is still a peak there, since such a slow
    path is far from memory-bound.
    """
    if device.type == "cuda":
        return 8192
    probe = 256
    rate = gemm_gflops(dtype, device, probe) * 1e9  # FLOP/s
    n = int((target_s * rate / 2) ** (1 / 3)) // probe * probe
    return max(probe, min(2048, n))


# --- cases -----------------------------------------------------------------------------------------------------
@dataclass
class Case:
    label: str
    group: str  # ours | timm | onnxruntime | openvino
    precision: str
    batch: int
    make: Callable[[], Callable[[], object]]  # builds (compiles, exports) and returns the timed call
    fn: Callable[[], object] | None = None
    iters: int = 1
    setup_s: float = 0.0
    mem_mb: float | None = None
    times: list[float] = field(default_factory=list)  # seconds per call, one per repetition
    error: str | None = None

    @property
    def ms(self) -> float:
        return statistics.median(self.times) * 1e3 if self.times else float("nan")

    @property
    def ips(self) -> float:
        return self.batch / (self.ms / 1e3) if self.times else float("nan")


def build_models(name: str, use_timm: bool, drop_path: float) -> tuple[nn.Module, nn.Module | None]:
    """Our model and timm's with identical weights (timm's random init copied into ours)."""
    import crossvit
    from crossvit.weights import normalize_state_dict

    torch.manual_seed(0)
    if Path(name).is_dir():  # a release (an int8 one brings its quantized network): timm gets the same weights
        from crossvit.inference import load_model
        from crossvit.weights import to_timm_state_dict

        ours = load_model(name)
        if not use_timm:
            return ours, None
        ref = _timm_model(ours.cfg).eval()
        ref.load_state_dict(to_timm_state_dict(ours.state_dict()), strict=True)
        return ours, ref
    if name == "cifar":
        cfg = crossvit.CrossViTConfig(**CIFAR, drop_path_rate=drop_path)
    else:
        cfg = crossvit.create_model(name).cfg.replace(drop_path_rate=drop_path)
    ours = crossvit.create_model(cfg)
    if not use_timm:
        return ours, None
    ref = _timm_model(cfg)
    ours.load_state_dict(normalize_state_dict(ref.state_dict()), strict=True)
    return ours, ref


def _timm_model(cfg) -> nn.Module:  # noqa: ANN001 - CrossViTConfig
    from timm.models.crossvit import CrossVit

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
    from crossvit.fast import OpenVINOModel, dtype_of, to_inference

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
                import torch._inductor.config as inductor_config

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
            from crossvit.int8 import is_int8, load_int8, quantize

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
        import onnxruntime as ort

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
        import openvino as ov

        with torch.no_grad():
            return ov.convert_model(copy.deepcopy(ref).eval(), example_input=torch.randn(1, 3, *size))

    def per_batch(b: int) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            from ..openvino_cpu import compile_model

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
    compile_: bool, device: torch.device,
) -> list[Case]:  # fmt: skip
    from crossvit.fast import dtype_of, prepare_training

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

    def ours_model(prec: str, comp: bool) -> Callable[[], tuple[nn.Module, nn.Module]]:
        def build() -> tuple[nn.Module, nn.Module]:
            m = copy.deepcopy(ours).to(device)
            return m, prepare_training(m, prec, compile=comp)

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
            if "timm" in peers and ref is not None:
                for fused in (True, False):
                    label = f"timm{tag} {'sdpa' if fused else 'math'}"
                    cases.append(Case(label, "timm", prec, b, step_factory(timm_model(fused), prec, False, b)))
    return cases


# --- running ---------------------------------------------------------------------------------------------------
def run_cases(
    cases: list[Case], reps: int, min_time: float, device: torch.device, peaks: dict, gemm_sizes: dict
) -> None:
    """Time every case ``reps`` times in rotation; the GEMM peaks go to ``peaks``, their n to ``gemm_sizes``."""
    for c in cases:
        log.info("setup %-28s batch %-4d ...", c.label, c.batch)
        try:
            t0 = time.perf_counter()
            c.fn = c.make()
            c.fn()  # first call: compile / allocate
            _sync(device)
            c.setup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.fn()
            _sync(device)
            c.iters = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
            c.mem_mb = peak_memory_mb(c.fn, device)
        except Exception as e:  # a peer that cannot run is reported, not fatal
            c.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            c.fn = None
            log.warning("  %s failed: %s", c.label, c.error)
    live = [c for c in cases if c.fn is not None]
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    sizes = {name: gemm_size(dtype, device) for name, dtype in dtypes.items()}
    gemm_sizes.update(sizes)
    for r in range(reps):
        for name, dtype in dtypes.items():
            peaks.setdefault(name, []).append(gemm_gflops(dtype, device, sizes[name]))
        order = live[r % len(live) :] + live[: r % len(live)] if live else []
        for c in order:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(c.iters):
                c.fn()
            _sync(device)
            c.times.append((time.perf_counter() - t0) / c.iters)
        log.info("rep %d/%d done", r + 1, reps)


def summarize(cases: list[Case], peaks: dict, flops_img: float, train: bool) -> tuple[list[dict], list[str]]:
    """Rows for JSON and the printed table; ratios of our best path to every peer in the same (batch, precision)."""
    peak = {k: max(v) for k, v in peaks.items()}
    work = flops_img * (3 if train else 1)  # a training step ~ forward + 2 x forward for the backward
    rows, lines = [], []
    keys = sorted({(c.batch, c.precision) for c in cases}, key=lambda k: (k[0], k[1] != "fp32", k[1]))
    head = f"{'path':<28}{'prec':>6}{'batch':>6}{'img/s':>9}{'ms/batch':>10}{'mem MB':>9}{'% peak':>8}{'ours x':>8}"
    lines.append(head)
    lines.append("-" * len(head))
    for b, prec in keys:
        group = [c for c in cases if (c.batch, c.precision) == (b, prec)]
        ours_ok = [c for c in group if c.group == "ours" and c.times]
        best = max(ours_ok, key=lambda c: c.ips) if ours_ok else None
        pk = peak.get(prec if prec in peak else "bf16")
        for c in group:
            pct = 100 * work * c.ips / (pk * 1e9) if c.times and pk else float("nan")
            ratio = best.ips / c.ips if best and c.times else float("nan")
            row = dict(
                label=c.label, group=c.group, precision=prec, batch=b, img_s=c.ips, ms=c.ms, mem_mb=c.mem_mb,
                pct_peak=pct, best_ours_over_this=ratio, setup_s=c.setup_s, iters=c.iters,
                samples_ms=[t * 1e3 for t in c.times], error=c.error,
            )  # fmt: skip
            rows.append(row)
            if c.error:
                lines.append(f"{c.label:<28}{prec:>6}{b:>6}   failed: {c.error[:60]}")
                continue
            mem = f"{c.mem_mb:9.0f}" if c.mem_mb is not None else f"{'-':>9}"
            lines.append(f"{c.label:<28}{prec:>6}{b:>6}{c.ips:9.2f}{c.ms:10.1f}{mem}{pct:7.1f}%{ratio:7.2f}x")
        peers = [c for c in group if c.group != "ours" and c.times]
        if best and peers:
            top = max(peers, key=lambda c: c.ips)
            lines.append(
                f"  -> best ours ({best.label}) = {best.ips / top.ips:.2f}x best peer ({top.label}); "
                f"{100 * work * best.ips / (pk * 1e9):.1f}% of the {prec if prec in peak else 'bf16'} GEMM peak"
            )
        lines.append("")
    for c in cases:  # int8 against the OpenVINO fp32 network of the same weights, same batch, same run
        base = next((o for o in cases if o.label == "ours openvino fp32" and o.batch == c.batch and o.times), None)
        if c.precision == "int8" and c.times and base is not None:
            lines.append(f"int8 speed-up, batch {c.batch}: {c.ips / base.ips:.2f}x ours openvino fp32 ({base.ips:.1f} "
                         f"-> {c.ips:.1f} img/s)")  # fmt: skip
    pk_line = ", ".join(f"{k} GEMM peak {v:.0f} GFLOP/s" for k, v in peak.items())
    lines.append(
        f"{pk_line}; model {flops_img / 1e9:.2f} GFLOP/img forward{' (x3 per training step)' if train else ''}"
    )
    return rows, lines


def main(args: argparse.Namespace) -> int:
    from crossvit.tools.flops import count_macs

    if args.reps < 1:
        raise ValueError(f"--reps must be >= 1, got {args.reps}")
    batches = [int(v) for v in _csv(args.batch_sizes, "--batch-sizes")]
    if any(b < 1 for b in batches):
        raise ValueError(f"--batch-sizes must be positive, got {args.batch_sizes}")
    precisions = _csv(args.precision, "--precision", ("fp32", "bf16", "fp16", "int8"))
    if "int8" in precisions and args.train:
        raise ValueError("--precision int8 is for inference; drop it with --train")
    peers = [] if args.peers.strip() == "none" else _csv(args.peers, "--peers", PEERS)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    notes = []
    for peer in list(peers):
        try:
            __import__(peer)
        except ImportError:
            notes.append(f"{peer}: not installed, skipped (pip install {peer})")
            peers.remove(peer)
    info = machine_info()
    log.info("%s | %s | threads %d | load %s", info.get("cpu"), " ".join(info.get("cpu_flags", [])), threads,
             info.get("loadavg"))  # fmt: skip
    ours, ref = build_models(args.model, "timm" in peers or "onnxruntime" in peers or "openvino" in peers,
                             args.drop_path if args.train else 0.0)  # fmt: skip
    flops_img = 2.0 * count_macs(ours)
    ours, ref = ours.to(device), (ref.to(device) if ref is not None else None)
    if args.train:
        cases = train_cases(ours, ref, peers, batches, precisions, args.compile, device)
    else:
        runtimes = _csv(args.runtime, "--runtime", ("torch", "openvino"))
        if "openvino" in runtimes and importlib.util.find_spec("openvino") is None:
            notes.append("ours openvino: openvino not installed, skipped (pip install openvino)")
            runtimes.remove("openvino")
        cases, more = inference_cases(ours, ref, peers, batches, precisions, args.compile, device, threads, runtimes)
        notes += more
    peaks: dict[str, list[float]] = {}
    gemm_sizes: dict[str, int] = {}
    run_cases(cases, args.reps, args.min_time, device, peaks, gemm_sizes)
    rows, lines = summarize(cases, peaks, flops_img, args.train)
    info["loadavg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    title = f"crossvit benchmark: {args.model} {'training step' if args.train else 'inference'} on {device.type}"
    print(f"{title} | {info.get('gpu') or info.get('cpu')} ({' '.join(info.get('cpu_flags', []))}) | "
          f"threads {threads} | median of {args.reps} | load {info['loadavg']} -> {info['loadavg_after']}")  # fmt: skip
    print("\n".join(lines))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = dict(
            model=args.model, mode="train" if args.train else "inference", device=device.type, machine=info,
            args={k: str(v) for k, v in vars(args).items()}, flops_per_image=flops_img,
            gemm_peak_gflops={k: max(v) for k, v in peaks.items()}, gemm_samples=peaks, gemm_n=gemm_sizes, rows=rows,
            notes=notes,
        )  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0
