"""How fast could any implementation of the same model train here? The matrix-product share of a training step.

    python benchmarks/train_ceiling.py --json benchmarks/results/train-ceiling-zen5.json
    python benchmarks/train_ceiling.py --model crossvit_9_240 --batch 32 --precision bf16

Our model and timm's ``CrossVit`` built with the same dimensions and weights (``crossvit.runtime.bench_cases``)
take the same training step as ``crossvit benchmark --train`` (forward, backward, AdamW: fused for ours, timm's
default for timm), under the PyTorch profiler. Every convolution and matrix product (``aten::mm``, ``addmm``,
``bmm``, ``mkldnn_convolution``, ``convolution_backward``, the attention kernels) is "matrix work": the same
multiply-adds in the same oneDNN kernels for any faithful implementation, since what the model computes is fixed.
The rest (normalisation, GELU, softmax, copies and casts, the optimizer, Python) is what an implementation can
shrink. If ours ran no overhead at all and its matrix work went exactly as fast as timm's, its step would take
timm's matrix time: ``ceiling = timm step / timm matrix time`` is then the largest speed-up over timm that the
same computation allows on this CPU (profiler time, so the step times here are a little above the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch._inductor.config as inductor_config
from torch import nn
from torch.profiler import ProfilerActivity, profile

from crossvit.runtime.bench import machine_info
from crossvit.runtime.bench_cases import _set_timm_fused, build_models
from crossvit.runtime.fast import dtype_of, prepare_training

TOP_OPS = 40  # kept per row in the JSON
MATRIX_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
    "aten::linear_backward",
    "mkldnn::_linear_pointwise",
)


def make_step(model: nn.Module, run: nn.Module, prec: str, b: int, fused: bool, size: tuple[int, int], ncls: int):
    """One training step on a fixed random batch; ``run`` is what is called (``model`` or a wrapper of it)."""
    g = torch.Generator().manual_seed(b)
    x = torch.randn(b, 3, *size, generator=g)
    y = torch.randint(0, ncls, (b,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=fused or None)
    model.train()
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype_of(prec), enabled=prec != "fp32"):
            loss = loss_fn(run(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def measure(step, reps: int) -> dict[str, float]:
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    wall = (time.perf_counter() - t0) / reps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            step()
    # self time of each op: a matrix op's own kernel, not the Python or dispatch above it
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / reps / 1e6
    matrix = sum(e.self_cpu_time_total for e in events if e.key in MATRIX_OPS) / reps / 1e6
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:TOP_OPS]
    return {
        "step_s": wall,
        "profiled_s": total,
        "matrix_s": matrix,
        "matrix_share": matrix / total,
        "top_ops": {e.key: round(e.self_cpu_time_total / reps / 1e6, 5) for e in top},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cifar", help="'cifar' (crossvit_cifar_36) or a registry name")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compiled", action="store_true", help="add our compiled step (``crossvit train``'s default)")
    p.add_argument("--top", type=int, default=0, help="print each row's N costliest ops (profiler self time)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ours, ref = build_models(args.model, True, 0.1)
    assert ref is not None
    rows = {}
    shape = (ours.cfg.img_size, ours.cfg.num_classes)
    run = prepare_training(ours, args.precision)  # our default attention kernel for this precision, eager
    rows["ours eager"] = measure(make_step(ours, run, args.precision, args.batch, True, *shape), args.reps)
    if args.compiled:
        # name Inductor's fused kernels in the profile, so that what is left outside the matrix work can be read
        inductor_config.cpp.enable_kernel_profile = True
        run = prepare_training(ours, args.precision, compile=True)
        rows["ours compiled"] = measure(make_step(ours, run, args.precision, args.batch, True, *shape), args.reps)
    for fused in (False, True):
        m = _set_timm_fused(ref, fused)
        rows[f"timm {'sdpa' if fused else 'math'}"] = measure(
            make_step(m, m, args.precision, args.batch, False, *shape), args.reps
        )
    best_timm = min((r for k, r in rows.items() if k.startswith("timm")), key=lambda r: r["step_s"])
    ceiling = best_timm["profiled_s"] / best_timm["matrix_s"]
    print(
        f"{machine_info()['cpu']}, {torch.get_num_threads()} threads; {args.model} batch {args.batch} {args.precision}"
    )
    print(f"{'':12} {'step ms':>8} {'profiled ms':>12} {'matrix ms':>10} {'matrix %':>9}")
    for k, r in rows.items():
        print(
            f"{k:12} {r['step_s'] * 1e3:8.1f} {r['profiled_s'] * 1e3:12.1f} {r['matrix_s'] * 1e3:10.1f} "
            f"{100 * r['matrix_share']:8.1f}%"
        )
    for k, r in rows.items() if args.top else ():
        print(f"{k}: " + ", ".join(f"{op} {s * 1e3:.1f}" for op, s in list(r["top_ops"].items())[: args.top]))
    print(
        f"ceiling over the faster timm row: {ceiling:.2f}x (its whole step / its matrix work); "
        f"ours now {best_timm['step_s'] / rows['ours eager']['step_s']:.2f}x eager"
        + (f", {best_timm['step_s'] / rows['ours compiled']['step_s']:.2f}x compiled" if args.compiled else "")
    )
    if args.json:
        out = {"machine": machine_info(), "model": args.model, "batch": args.batch, "precision": args.precision,
               "rows": rows, "ceiling_over_timm": ceiling}  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
