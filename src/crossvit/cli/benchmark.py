"""``crossvit benchmark``: our model against timm, ONNX Runtime and OpenVINO, same weights, one process.

    crossvit benchmark --model crossvit_15_240 --batch-sizes 1,32 --precision fp32,bf16 --compile --json b.json
    crossvit benchmark --model crossvit_15_240 --train --batch-sizes 32 --precision fp32,bf16 --compile
    crossvit benchmark --model cifar --train --batch-sizes 256     # crossvit_cifar_36: 2 M params, 36 px
    crossvit benchmark --model cifar --train --batch-sizes 256 --precision bf16 --compile --compile-mode max-autotune

How paths are timed and memory is measured: :mod:`crossvit.runtime.bench`; the paths timed:
:mod:`crossvit.runtime.bench_cases`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
from pathlib import Path

import torch

from ..models.flops import count_macs
from ..runtime.bench import machine_info, run_cases, summarize
from ..runtime.bench_cases import build_models, inference_cases, train_cases
from ..runtime.fast import COMPILE_MODES

log = logging.getLogger("crossvit.benchmark")
PEERS = ("timm", "onnxruntime", "openvino")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="registered name or 'cifar' (= crossvit_cifar_36), random weights (default crossvit_15_240)"
    )
    p.add_argument("--checkpoint", help="time these weights instead: any model source (+ --model for a weights file)")
    p.add_argument("--batch-sizes", default="1,32", help="comma-separated (default 1,32)")
    p.add_argument(
        "--precision", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (CUDA), int8 (OpenVINO, NNCF)"
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile paths (ours and timm)")
    p.add_argument(
        "--compile-mode", default="default", choices=COMPILE_MODES,
        help="--train --compile: max-autotune adds a row compiled with Inductor's GEMM autotuning (minutes to set up)",
    )  # fmt: skip
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


def main(args: argparse.Namespace) -> int:
    if args.reps < 1:
        raise ValueError(f"--reps must be >= 1, got {args.reps}")
    batches = [int(v) for v in _csv(args.batch_sizes, "--batch-sizes")]
    if any(b < 1 for b in batches):
        raise ValueError(f"--batch-sizes must be positive, got {args.batch_sizes}")
    precisions = _csv(args.precision, "--precision", ("fp32", "bf16", "fp16", "int8"))
    if "int8" in precisions and args.train:
        raise ValueError("--precision int8 is for inference; drop it with --train")
    if args.compile_mode != "default" and not (args.train and args.compile):
        raise ValueError(f"--compile-mode {args.compile_mode}: adds a training row; use it with --train --compile")
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
    use_timm = "timm" in peers or "onnxruntime" in peers or "openvino" in peers
    model_name = args.model or (None if args.checkpoint else "crossvit_15_240")
    ours, ref = build_models(model_name, use_timm, args.drop_path if args.train else 0.0, args.checkpoint)
    flops_img = 2.0 * count_macs(ours)
    ours, ref = ours.to(device), (ref.to(device) if ref is not None else None)
    if args.train:
        cases = train_cases(ours, ref, peers, batches, precisions, args.compile, device, args.compile_mode)
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
    what = args.checkpoint or model_name
    title = f"crossvit benchmark: {what} {'training step' if args.train else 'inference'} on {device.type}"
    print(f"{title} | {info.get('gpu') or info.get('cpu')} ({' '.join(info.get('cpu_flags', []))}) | "
          f"threads {threads} | median of {args.reps} | load {info['loadavg']} -> {info['loadavg_after']}")  # fmt: skip
    print("\n".join(lines))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = dict(
            model=what, mode="train" if args.train else "inference", device=device.type, machine=info,
            args={k: str(v) for k, v in vars(args).items()}, flops_per_image=flops_img,
            gemm_peak_gflops={k: max(v) for k, v in peaks.items()}, gemm_samples=peaks, gemm_n=gemm_sizes, rows=rows,
            notes=notes,
        )  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0
