"""Attention kernels for CPU training, against the explicit-matmul path measured in the same run.

    python benchmarks/attention_kernels.py --json benchmarks/results/attention-kernels-zen5.json
    python benchmarks/attention_kernels.py --precision fp32 --no-steps      # kernels only, fp32

Part 1 times forward + backward of the attention product alone, for the self-attention shapes of each branch of
the named models at the batch the training benchmark uses (``crossvit_cifar_36`` at 256, the 224/240-px models at
32): ``math`` (softmax(q k^T / sqrt(d)) v on the whole batch), ``tiled`` (the same matmuls per cache-sized tile,
crossvit.models.layers.tiled_attention) and ``sdpa`` (F.scaled_dot_product_attention). Part 2 times whole training
steps (forward, backward, fused AdamW) of our models with ``math`` and with ``tiled`` attention, same weights and
batch. The candidates of one row run in turn, repetition by repetition (a slow spell of the machine hits all of
them alike); each figure is the median of ``--reps`` repetitions after warm-up; ratios are against ``math``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossvit.io.factory import create_model
from crossvit.models.layers.tiled_attention import tile_rows, tiled_attention
from crossvit.runtime.bench import machine_info

BATCH = {"crossvit_cifar_36": 256}  # every other model at 32, as in docs/performance.md


def plain(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v


KERNELS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "math": plain,
    "tiled": tiled_attention,
    "sdpa": F.scaled_dot_product_attention,
}


def interleaved_ms(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median ms per call of each function, the functions called in turn within each repetition."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def branch_shapes(name: str) -> list[tuple[int, int, int, int]]:
    """(B, H, N, d) of each branch's self-attention; N counts the CLS token."""
    cfg = create_model(name).cfg
    b = BATCH.get(name, 32)
    shapes = []
    for (h, w), p, dim, heads in zip(cfg.branch_img_size, cfg.patch_size, cfg.embed_dim, cfg.num_heads):
        shapes.append((b, heads, (h // p) * (w // p) + 1, dim // heads))
    return shapes


def kernel_rows(models: list[str], precision: str, reps: int) -> list[dict]:
    autocast = precision == "bf16"
    dtype = torch.bfloat16 if autocast else torch.float32
    rows = []
    for name in models:
        for shape in branch_shapes(name):
            g = torch.Generator().manual_seed(0)
            q, k, v, grad = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(4))
            q, k, v = (t.requires_grad_() for t in (q, k, v))

            def once(fn: Callable, q: Tensor = q, k: Tensor = k, v: Tensor = v, grad: Tensor = grad) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    out = fn(q, k, v)
                out.backward(grad)
                q.grad = k.grad = v.grad = None

            ms = interleaved_ms({label: lambda fn=fn: once(fn) for label, fn in KERNELS.items()}, reps)
            b, h, n, d = shape
            row = dict(model=name, shape=list(shape), tile_rows=tile_rows(b * h, n, d), precision=precision, ms=ms)
            rows.append(row)
            ratios = "  ".join(f"{k} {v:7.1f} ms {ms['math'] / v:4.2f}x" for k, v in ms.items())
            print(f"{name:18s} B={b:3d} H={h} N={n:3d} d={d:2d} tile {row['tile_rows']:4d}/{b * h:<5d} {ratios}")
    return rows


def step_rows(models: list[str], precision: str, reps: int) -> list[dict]:
    autocast = precision == "bf16"
    rows = []
    for name in models:
        torch.manual_seed(0)
        ref = create_model(name).train()
        b, size = BATCH.get(name, 32), ref.cfg.img_size
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(b, 3, *size, generator=g), torch.randint(0, ref.cfg.num_classes, (b,), generator=g)
        steps = {}
        for impl in ("math", "tiled"):
            m = create_model(name).train()
            m.load_state_dict(ref.state_dict())
            m.set_attention_impl(impl)
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.05, fused=True)

            def step(m: nn.Module = m, opt: torch.optim.Optimizer = opt, x: Tensor = x, y: Tensor = y) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = F.cross_entropy(m(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            steps[impl] = step
        ms = interleaved_ms(steps, reps)
        rows.append(dict(model=name, batch=b, precision=precision, ms=ms))
        print(f"{name:18s} training step, batch {b}: math {ms['math']:7.1f} ms, tiled {ms['tiled']:7.1f} ms "
              f"-> {ms['math'] / ms['tiled']:.2f}x ({b * 1000 / ms['tiled']:.1f} img/s)")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="crossvit_cifar_36,crossvit_9_240,crossvit_15_240,crossvit_18_240")
    ap.add_argument("--step-models", default="crossvit_cifar_36,crossvit_9_240")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-steps", action="store_true", help="kernels only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    info = machine_info()
    print(f"attention kernels, {args.precision}, {info['cpu']}, {info['threads']} threads, torch {info['torch']}")
    kernels = kernel_rows(args.models.split(","), args.precision, args.reps)
    steps = [] if args.no_steps else step_rows(args.step_models.split(","), args.precision, args.reps)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = dict(machine=info, args={k: str(v) for k, v in vars(args).items()}, kernels=kernels, steps=steps)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
