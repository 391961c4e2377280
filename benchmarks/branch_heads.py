"""Validation top-1 of each branch head alone, for finished training runs (Table 6's single-branch columns).

    python benchmarks/branch_heads.py RUN_DIR [RUN_DIR ...]

For each run directory: its release (the weights its last validation scored), the validation split its
config.yaml carved (same data, same --val-split-size, same seed), evaluated with the run's own TTA. Writes
``validate.json`` into the run directory: top1 of the model (checked against the run's last summary.csv row) and
top1_branch_s / top1_branch_l for a two-branch model. ``benchmarks/time_results.py --table6`` reads it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

import crossvit
from crossvit.data.build import build_data
from crossvit.train.config import TrainConfig
from crossvit.train.engine import evaluate


def heads(run: Path) -> dict:
    cfg_path, release = run / "config.yaml", run / "release"
    if not release.is_dir():
        raise FileNotFoundError(f"{release}: missing; only finished runs have a release")
    raw = yaml.safe_load(cfg_path.read_text())
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in raw.items() if k in names})
    cfg = replace(cfg, loader="workers", cache_images=False)  # decode the validation images only, not the train set
    model = crossvit.from_pretrained(release).eval()
    data = build_data(cfg, model.cfg.img_size[0])
    if data.val is None:
        raise ValueError(f"{cfg_path}: the run had no validation split")
    dl = DataLoader(data.val, batch_size=256)
    two = not model.cfg.single_branch
    with torch.no_grad():
        m = evaluate(model, dl, torch.device("cpu"), "fp32", num_classes=model.num_classes, branches=two, tta=cfg.tta)
    m.pop("confusion", None)
    rows = list(csv.DictReader((run / "summary.csv").open()))
    m["run_top1"] = float(rows[-1]["top1"])
    m["tta"] = cfg.tta
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    bad = 0
    for run in args.runs:
        m = heads(run)
        tmp = run / "validate.json.tmp"
        tmp.write_text(json.dumps(m, indent=2) + "\n")
        tmp.replace(run / "validate.json")
        branch = "".join(f" {b} head {m[f'top1_branch_{b}']:.2f}" for b in "sl" if f"top1_branch_{b}" in m)
        print(f"{run.name}: top1 {m['top1']:.2f} (run's last epoch: {m['run_top1']:.2f}){branch}", flush=True)
        if abs(m["top1"] - m["run_top1"]) > 0.05:  # bf16 training validation vs fp32 here would differ slightly
            print(f"  warning: {run.name}: {m['top1']:.2f} here vs {m['run_top1']:.2f} in the run", file=sys.stderr)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
