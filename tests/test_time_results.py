"""benchmarks/time_results.py's Table 6 section on fake time-budget runs: means, standard errors, verdicts.

Golden values are computed here by hand (mean and standard error of three seeds, binomial error of 5,000 images).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import yaml

BENCH = Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # time_results imports results_page by name; dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


_load("results_page")
T = _load("time_results")

CROSS, SINGLE, NONE = "crossvit_cifar_conv_32", "crossvit_cifar_conv_single_32", "crossvit_cifar_conv_fuse_none_32"
ALLATTN = "crossvit_cifar_conv_fuse_allattn_32"


def fake_run(root: Path, model: str, seed: int, top1: float, heads: tuple[float, float] | None) -> Path:
    """A finished 30-minute run as crossvit train and benchmarks/branch_heads.py leave it (no release kept)."""
    d = root / f"t6-{model}-s{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model, "seed": seed, "epochs": 200, "num_classes": 10}))
    with open(d / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "train_loss", "val_loss", "top1", "top5", "lr", "train_img_s", "epoch_s"])
        w.writerow([1, 2.0, 1.5, top1 - 10, 90, 1e-3, 70, 600])
        w.writerow([2, 1.5, 1.0, top1, 95, 0.0, 72, 600])
    (d / "train.log").write_text(
        "2026-12-02 21:00:00,000 cpu: Test CPU (family 1); 1 threads per process\n"
        "2026-12-02 21:00:00,100 time budget 30m (1800s, 12s used): the step count is planned from the measured speed\n"
        "2026-12-02 21:10:00,000 epoch 1/200 train_loss 2.0 val_loss 1.5\n"
        "2026-12-02 21:20:00,000 epoch 2/200 train_loss 1.5 val_loss 1.0\n"
    )
    v = {"images": 5000, "top1": top1, "run_top1": top1, "tta": "flip"}
    if heads:
        v |= {"top1_branch_s": heads[0], "top1_branch_l": heads[1]}
    (d / "validate.json").write_text(json.dumps(v))
    return d


def test_table6_section_means_errors_and_verdicts(tmp_path: Path) -> None:
    cross = [70.0, 71.0, 72.0]
    dirs = [fake_run(tmp_path, CROSS, s, t, (40.0 + s, 50.0)) for s, t in enumerate(cross)]
    dirs += [fake_run(tmp_path, SINGLE, s, t, None) for s, t in enumerate([70.5, 71.5, 72.5])]
    dirs += [fake_run(tmp_path, NONE, 0, 60.0, (12.0, 59.0))]
    text = "\n".join(T.table6(dirs, "cmd"))
    se = 1.0 / math.sqrt(3)  # sample std of 70, 71, 72 is 1
    assert f"**71.00 ± {se:.2f}**" in text and f"**71.50 ± {se:.2f}**" in text and "**60.00**" in text
    assert f"| 41.00 ± {se:.2f} | 50.00 ± 0.00 |" in text  # S heads 40, 41, 42; L heads all 50
    assert "1 thread(s)" in text and "Test CPU (family 1)" in text
    # cross vs single: gap -0.5; noise per model = max(binomial of 71 % on 5,000, seed SE)
    binom = lambda p: 100 * math.sqrt(p / 100 * (1 - p / 100) / 5000)  # noqa: E731
    noise = math.hypot(max(binom(71.0), se), max(binom(71.5), se))
    assert f"71.00 vs 71.50 (gap -0.50 points, 1 SE of the gap {noise:.2f})" in text
    assert "beats its single-branch baseline (Table 2's claim, here at equal wall time): **did not hold, within" in text
    assert "beats none fusion: **held (gap beyond 2 SE)** — 71.00 vs 60.00 (gap +11.00" in text
    assert "S branch's own head carries the most information of any scheme" in text and "**held** —" in text
    assert "all-attention fusion: not tested" in text
    assert "Not trained" not in text


def test_table6_head_claim_needs_another_scheme(tmp_path: Path) -> None:
    """Only cross-attention's heads scored: there is nothing for its S head to beat, so the claim is untested."""
    dirs = [fake_run(tmp_path, CROSS, 0, 65.0, (53.0, 59.0)), fake_run(tmp_path, SINGLE, 0, 69.0, None)]
    text = "\n".join(T.table6(dirs, "cmd"))
    assert "most information of any scheme (paper: 47.2 % against 0.1-7.6 %): not tested" in text
    assert "cross-attention S head 53.00 % (chance 10 %)." in text


def test_table6_names_a_scheme_that_stayed_at_chance(tmp_path: Path) -> None:
    dirs = [fake_run(tmp_path, CROSS, 0, 65.0, (53.0, 59.0)), fake_run(tmp_path, ALLATTN, 0, 10.0, (10.0, 10.0))]
    text = "\n".join(T.table6(dirs, "cmd"))
    assert "- Not trained: all-attention ended at chance (10 %) in every run" in text


def test_runs_table_marks_one_thread_runs(tmp_path: Path, monkeypatch) -> None:
    one = fake_run(tmp_path, CROSS, 0, 70.0, None)
    two = fake_run(tmp_path, SINGLE, 0, 72.0, None)
    for d in (one, two):  # what the runs table reads beyond the Table 6 fields
        cfg = yaml.safe_load((d / "config.yaml").read_text()) | {"batch_size": 128, "lr": 1.5e-3, "time_budget": "30m"}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    log = two / "train.log"
    log.write_text(log.read_text().replace("1 threads per process", "2 threads per process"))
    out = tmp_path / "page.md"
    argv = ["time_results", str(one), str(two), "--out", str(out), "--img", str(tmp_path / "top1.png")]
    monkeypatch.setattr(sys, "argv", argv)
    T.main()
    rows = {ln.split("|")[1].strip(" `"): ln for ln in out.read_text().splitlines() if ln.startswith("| `t6-")}
    assert rows[one.name].rstrip().endswith("| A, 1 thread |")
    assert rows[two.name].rstrip().endswith("| A |")


def test_minutes_of_a_run_in_two_segments(tmp_path: Path) -> None:
    """A budget run resumed in a second command: its epochs count from that command's own "used" line, so the
    hours between the two segments do not appear on the page (golden minutes by hand)."""
    d = fake_run(tmp_path, CROSS, 0, 70.0, None)
    with open(d / "summary.csv", "a", newline="") as f:
        csv.writer(f).writerow([3, 1.4, 0.9, 71.0, 96, 0.0, 72, 600])
    with open(d / "train.log", "a") as f:
        f.write(
            "2026-12-03 09:00:00,000 resumed from last.pth at epoch 2\n"
            "2026-12-03 09:00:01,000 time budget 30m (1800s, 1250s used): the step count is planned\n"
            "2026-12-03 09:05:01,000 epoch 3/200 train_loss 1.4 val_loss 0.9\n"
        )
    r = T.read_run(d)
    # segment 1: 12 s used at 21:00:00.1, epochs end 599.9 s and 1199.9 s later; segment 2: 1250 s + 300 s
    assert [round(m * 60, 1) for m in r["minutes"]] == [611.9, 1211.9, 1550.0]
    assert r["top1"] == [60.0, 70.0, 71.0]


def test_table6_sections_per_family(tmp_path: Path) -> None:
    """Runs of two model families are split by the model their config names, each with its own verdicts."""
    c3, s3 = "crossvit_cifar_conv3_32", "crossvit_cifar_conv3_single_32"
    old = [fake_run(tmp_path / "a", CROSS, 0, 65.0, None), fake_run(tmp_path / "a", SINGLE, 0, 60.0, None)]
    new = [fake_run(tmp_path / "b", c3, 0, 80.0, (55.0, 70.0)), fake_run(tmp_path / "b", s3, 0, 75.0, None)]
    fams = T.split_families([new[0], old[0], new[1], old[1]])
    assert list(fams) == ["crossvit_cifar_conv", "crossvit_cifar_conv3"]  # FAMILIES' order, not the argument order
    assert fams["crossvit_cifar_conv3"] == new and fams["crossvit_cifar_conv"] == old
    text = "\n".join(T.table6(fams["crossvit_cifar_conv3"], "cmd", "crossvit_cifar_conv3"))
    assert text.startswith("## Table 6 at 30 minutes: the three-stage tokenizer")
    assert "| cross-attention | `crossvit_cifar_conv3_32` |" in text and "80.00 vs 75.00 (gap +5.00" in text
    stray = fake_run(tmp_path / "c", "crossvit_cifar_36", 0, 50.0, None)
    try:
        T.split_families([stray])
    except ValueError as e:
        assert "crossvit_cifar_36" in str(e) and str(stray) in str(e)
    else:
        raise AssertionError("a run of no Table 6 family was accepted")
