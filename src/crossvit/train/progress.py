"""Progress you can watch: tqdm bars on a terminal, plain log lines otherwise, ``summary.csv`` and TensorBoard."""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("crossvit")

CSV_FIELDS = ["epoch", "train_loss", "val_loss", "top1", "top5", "lr", "train_img_s", "epoch_s"]


class StepProgress:
    """One epoch's progress: a tqdm bar (loss, lr, img/s, ETA) on a TTY, a log line every ``interval`` steps else."""

    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool, interval: int = 50) -> None:
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.enabled, self.interval = enabled, max(1, interval)
        self.t0 = time.perf_counter()
        self.images = 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm  # loaded on first use (slow import)

            self.bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True)

    def update(self, step: int, loss: float, lr: float, batch: int) -> None:
        self.images += batch
        if not self.enabled:
            return
        rate = self.images / max(1e-9, time.perf_counter() - self.t0)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}", refresh=False)
            self.bar.update(1)
        elif (step + 1) % self.interval == 0 or step + 1 == self.total:
            log.info(
                "epoch %d/%d step %d/%d loss %.4f lr %.3e %.0f img/s",
                self.epoch + 1,
                self.epochs,
                step + 1,
                self.total,
                loss,
                lr,
                rate,
            )

    def close(self) -> float:
        if self.bar is not None:
            self.bar.close()
        return self.images / max(1e-9, time.perf_counter() - self.t0)


class RunLog:
    """Per-epoch rows in ``summary.csv`` and TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.csv = run_dir / "summary.csv"
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # loaded on first use (slow import)

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency, but a trimmed install should still train
                log.warning("tensorboard is not installed; writing summary.csv only")

    def epoch(self, row: dict[str, Any]) -> None:
        new = not self.csv.exists()
        with open(self.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_FIELDS})
        if self.tb is not None:
            for k in CSV_FIELDS[1:]:
                if row.get(k) is not None:
                    self.tb.add_scalar(k, row[k], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_summary(run_dir: str | Path) -> list[dict[str, float | None]]:
    path = Path(run_dir) / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {run_dir} a crossvit run directory?")
    with open(path) as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
