"""``crossvit plot RUN_DIR``: PNG curves of a run (loss, top-1, learning rate) from its ``summary.csv``.

crossvit plot runs/demo-20260101-120000          # writes curves.png in the run dir
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .progress import read_summary


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib  # loaded on first use (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loaded on first use (slow import)

    rows = read_summary(run_dir)
    if not rows:
        raise ValueError(f"{Path(run_dir) / 'summary.csv'}: no epochs recorded yet")
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(ep, [r["train_loss"] for r in rows], label="train")
    if any(r["val_loss"] is not None for r in rows):
        axes[0].plot(ep, [r["val_loss"] for r in rows], label="val")
    axes[0].set_title("loss")
    axes[0].legend()
    if any(r["top1"] is not None for r in rows):
        axes[1].plot(ep, [r["top1"] for r in rows], label="top-1")
        axes[1].plot(ep, [r["top5"] for r in rows], label="top-5")
        axes[1].legend()
    axes[1].set_title("validation accuracy (%)")
    axes[2].plot(ep, [r["lr"] for r in rows])
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory (holds summary.csv)")
    p.add_argument("-o", "--out", default=None, help="PNG path (default: RUN_DIR/curves.png)")


def main(args: argparse.Namespace) -> int:
    print(plot_run(args.run_dir, args.out))
    return 0
