"""Timing and memory of model paths on one machine: GEMM peaks, peak memory, round-robin repetitions, the table.

Every path is set up and warmed up first (compile / export time is reported as setup), then the paths are timed
round-robin, ``reps`` times, each time in a different order, and the median is kept: load on a shared machine
hits all paths alike and the ratios hold. The machine's GEMM peak (bf16 and fp32) is measured inside the same
loop; % of peak = model FLOPs (2 x ``count_macs``; 3 x that for a training step) x images/s / peak.

Peak memory: on CPU the resident set size (RSS) is sampled every ~1 ms by a thread during one call, after
``gc.collect()`` and glibc ``malloc_trim``, and reported as the rise above the level before the call
(activations, workspaces and, for training, gradients; the weights are loaded before). On CUDA it is
``torch.cuda.max_memory_allocated`` above the allocation before the call.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cpu import cpu_description, cpu_flags

log = logging.getLogger("crossvit.benchmark")


def machine_info() -> dict:
    """CPU model and the flags that matter (AMX, AVX512-BF16), load average, library versions."""
    info: dict = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    info["cpu"] = cpu_description()  # names the family and model: "AMD EPYC" alone can be Zen 3 or Zen 5
    info["cpu_flags"] = cpu_flags()
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
        import psutil  # optional dependency

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
