"""The CIFAR-10 comparison of issue 8: data split, the queue of runs (one after another, resumable), final evaluation.

    python benchmarks/cifar10_runs.py prepare                     # runs/cifar10/data (symlinks, read-only source)
    nohup nice -n 5 python benchmarks/cifar10_runs.py queue --deadline 13:00 > runs/cifar10/queue.log 2>&1 &
    python benchmarks/cifar10_runs.py one --model crossvit_cifar_36 --seed 0     # a single run (resumes)
    python benchmarks/cifar10_runs.py speed --threads 2                         # img/s on the idle machine
    python benchmarks/results_page.py runs/cifar10 --out docs/results-cifar10.md   # the table and the curves

    # the middle budget: 10 epochs over all 48,000 training images (same 2,000-image validation split)
    python benchmarks/cifar10_runs.py --budget mid prepare
    python benchmarks/cifar10_runs.py --budget mid one --model crossvit_cifar_36 --seed 0
    python benchmarks/results_page.py runs/cifar10-mid --out docs/results-cifar10-mid.md

Each run is ``crossvit.train.train`` on ``configs/cifar10.yaml`` with --model/--seed/--experiment changed, in its own
process; the run dir (runs/cifar10/<model>-s<seed>) holds config.yaml, summary.csv, last.pth, release/, and what this
script adds: validate.json (top-1 of the ensemble and of each branch head on the validation split) and run.json
(threads, start/end, wall seconds). A killed run resumes from last.pth when the queue is started again; a finished
run (run.json present) is skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "cifar10.yaml"
SOURCE = ROOT.parent / "shared" / "datasets" / "cifar10" / "train"
OUT = ROOT / "runs" / "cifar10"
VAL_PER_CLASS = 200  # fixed validation split carved from train/ (split_samples seed 0): 2,000 images
TRAIN_PER_CLASS = 500  # training subset drawn from the rest (split_samples seed 1): 5,000 images
# --budget: (recipe, run root, training images per class; None = every image not in the validation split)
BUDGETS: dict[str, tuple[Path, Path, int | None]] = {
    "short": (RECIPE, OUT, TRAIN_PER_CLASS),
    "mid": (ROOT / "configs" / "cifar10_mid.yaml", ROOT / "runs" / "cifar10-mid", None),
}

# priority order of the brief; extra seeds last (skipped when the deadline does not leave room)
QUEUE: list[tuple[str, int]] = [
    ("crossvit_cifar_36", 0),
    ("crossvit_cifar_single_36", 0),
    ("crossvit_cifar_fuse_none_36", 0),
    ("crossvit_cifar_fuse_clstoken_36", 0),
    ("crossvit_cifar_fuse_allattn_36", 0),
    ("crossvit_cifar_fuse_pairwise_36", 0),
    ("crossvit_cifar_single_36", 1),
    ("crossvit_cifar_fuse_clstoken_36", 1),
    ("crossvit_cifar_36", 1),
    ("crossvit_cifar_single_36", 2),
    ("crossvit_cifar_36", 2),
    ("crossvit_cifar_fuse_clstoken_36", 2),
    ("crossvit_cifar_fuse_none_36", 1),
    ("crossvit_cifar_fuse_allattn_36", 1),
    ("crossvit_cifar_fuse_pairwise_36", 1),
    ("crossvit_cifar_fuse_none_36", 2),
    ("crossvit_cifar_fuse_pairwise_36", 2),
    ("crossvit_cifar_fuse_allattn_36", 2),
]


BUDGET = "short"


def run_name(model: str, seed: int) -> str:
    return f"{model}-s{seed}"


def prepare(source: Path = SOURCE, out: Path = OUT / "data", per_class: int | None = TRAIN_PER_CLASS) -> None:
    """``out/val`` and ``out/train`` as ImageFolder trees of symlinks into ``source`` (which is only read)."""
    from crossvit.data.folder import scan_folder, split_samples

    classes, samples = scan_folder(source)
    rest, val = split_samples(samples, VAL_PER_CLASS, seed=0)  # the same validation split for every budget
    train = rest if per_class is None else split_samples(rest, per_class, seed=1)[1]
    for split, items in (("val", val), ("train", train)):
        for c in classes:
            (out / split / c).mkdir(parents=True, exist_ok=True)
        for path, label in items:
            link = out / split / classes[label] / Path(path).name
            if not link.exists():
                link.symlink_to(Path(path).resolve())
    print(
        f"{out}: {len(train)} train / {len(val)} val images, {len(classes)} classes (from {len(samples)} in {source})"
    )


def one(model: str, seed: int, threads: int) -> int:
    """Train (or resume) one run in this process, then evaluate its release on the validation split."""
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if threads > 1 and os.getloadavg()[0] > threads + 0.5:  # others still busy: 2 threads would stall each other
        logging.info("load %.1f: training with 1 thread instead of %d", os.getloadavg()[0], threads)
        threads = 1
    torch.set_num_threads(threads)
    from crossvit.data.build import build_data
    from crossvit.io.hub import from_pretrained
    from crossvit.train import trainer
    from crossvit.train.config import load_yaml, resolve
    from crossvit.train.engine import evaluate

    # bf16 training on CPU: explicit-matmul attention (the SDPA backward is the slow path), see crossvit.runtime.fast
    build = trainer.build_model

    def build_math(cfg, num_classes):
        m = build(cfg, num_classes)
        m.set_attention_impl("math")
        return m

    trainer.build_model = build_math
    name = run_name(model, seed)
    cfg = resolve(None, base=load_yaml(RECIPE), model=model, seed=seed, experiment=name, output=str(OUT))
    start = time.time()
    r = trainer.train(cfg)
    wall = time.time() - start
    run_dir = Path(r["run_dir"])

    net = from_pretrained(run_dir / "release").eval()
    data = build_data(cfg, net.cfg.img_size[0])
    loader = torch.utils.data.DataLoader(data.val, batch_size=256)
    two = not getattr(net.cfg, "single_branch", False)
    res = evaluate(net, loader, torch.device("cpu"), cfg.amp, branches=two)
    res = {k: v for k, v in res.items() if k != "confusion"}
    res.update(model=model, seed=seed, checkpoint=str(run_dir / "release"))
    (run_dir / "validate.json").write_text(json.dumps(res, indent=2))
    info = {
        "model": model,
        "seed": seed,
        "threads": threads,
        "start_utc": dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat(timespec="seconds"),
        "end_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s_this_process": wall,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(res))
    return 0


def speed(threads: int, steps: int = 10, batch_size: int = 64) -> int:
    """Training-step throughput of every model of QUEUE (bf16, math attention, AdamW; random images) into speed.json.

    Meant for an idle machine: the per-epoch img/s of the runs were measured while other jobs shared the CPU."""
    import torch

    import crossvit

    torch.set_num_threads(threads)
    res: dict[str, dict] = {}
    for model in dict.fromkeys(m for m, _ in QUEUE):
        torch.manual_seed(0)
        net = crossvit.create_model(model, num_classes=10).train()
        net.set_attention_impl("math")
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
        h, w = net.cfg.img_size
        x, y = torch.randn(batch_size, 3, h, w), torch.randint(0, 10, (batch_size,))  # (B, 3, 36, 36), (B,)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        times = []
        for i in range(steps + 3):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 3:  # the first steps allocate and pick kernels
                times.append(time.perf_counter() - t0)
        times.sort()
        img_s = batch_size / times[len(times) // 2]
        res[model] = {"img_s": img_s, "threads": threads, "batch_size": batch_size, "amp": "bf16", "steps": steps}
        print(f"{model}: {img_s:.0f} img/s (median of {steps} steps, {threads} threads, load {os.getloadavg()[0]:.1f})")
    (OUT / "speed.json").write_text(json.dumps(res, indent=2))
    return 0


def _deadline(hhmm: str) -> float:
    h, m = (int(v) for v in hhmm.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def queue(deadline: str, busy_until: str, min_left_s: float) -> int:
    """Every run of QUEUE, one after another, each killed at the deadline; finished runs are skipped."""
    end, busy = _deadline(deadline), _deadline(busy_until)
    durations: dict[str, float] = {}
    for model, seed in QUEUE:
        name = run_name(model, seed)
        if (OUT / name / "run.json").exists():
            continue
        left = end - time.time()
        need = max(min_left_s, 1.1 * durations.get(model, 0.0))
        if left < need:
            print(f"{time.strftime('%H:%M:%S')} skip {name}: {left:.0f} s left, needs ~{need:.0f} s", flush=True)
            continue
        threads = 1 if time.time() < busy else 2  # on a shared machine 2 threads stall each other
        print(f"{time.strftime('%H:%M:%S')} start {name} ({threads} thread(s), {left:.0f} s left)", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        cmd = [
            sys.executable,
            __file__,
            "--budget",
            BUDGET,
            "one",
            "--model",
            model,
            "--seed",
            str(seed),
            "--threads",
            str(threads),
        ]
        t0 = time.time()
        try:
            rc = subprocess.run(cmd, env=env, timeout=left).returncode
        except subprocess.TimeoutExpired:
            print(f"{time.strftime('%H:%M:%S')} {name}: killed at the deadline (resumable)", flush=True)
            return 1
        durations[model] = time.time() - t0
        print(f"{time.strftime('%H:%M:%S')} end {name}: rc {rc}, {durations[model]:.0f} s", flush=True)
    return 0


def main() -> int:
    global RECIPE, OUT, BUDGET  # one budget per process: the subcommands below read these
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="short", help="recipe + run root (default short)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare", help="make runs/cifar10/data")
    o = sub.add_parser("one", help="train + evaluate one run")
    o.add_argument("--model", required=True)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--threads", type=int, default=1)
    sp = sub.add_parser("speed", help="training img/s of each model on an idle machine -> runs/cifar10/speed.json")
    sp.add_argument("--threads", type=int, default=2)
    q = sub.add_parser("queue", help="all runs in priority order until the deadline")
    q.add_argument("--deadline", default="13:00", help="UTC HH:MM at which the current run is killed")
    q.add_argument("--busy-until", default="12:40", help="UTC HH:MM until which the CPU is shared (1 thread)")
    q.add_argument("--min-left", type=float, default=240.0, help="do not start a run with fewer seconds left")
    a = p.parse_args()
    BUDGET = a.budget
    RECIPE, OUT, per_class = BUDGETS[a.budget]
    if a.cmd == "prepare":
        prepare(out=OUT / "data", per_class=per_class)
        return 0
    if a.cmd == "speed":
        return speed(a.threads)
    if a.cmd == "one":
        return one(a.model, a.seed, a.threads)
    return queue(a.deadline, a.busy_until, a.min_left)


if __name__ == "__main__":
    raise SystemExit(main())
