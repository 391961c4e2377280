"""benchmarks/results_page.py on fake run directories: the table's figures, the verdicts, the PNGs, the release, errors.

Golden values are computed here by hand (mean / sample std of two seeds, binomial standard error), not by the module.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

# The results page is an experiment script, outside the package: load it from its file.
_spec = importlib.util.spec_from_file_location(
    "results_page", Path(__file__).parents[1] / "benchmarks" / "results_page.py"
)
R = importlib.util.module_from_spec(_spec)
sys.modules["results_page"] = R  # dataclasses look their module up there
_spec.loader.exec_module(R)


CROSS, SINGLE, NONE = "crossvit_cifar_36", "crossvit_cifar_single_36", "crossvit_cifar_fuse_none_36"


def fake_run(
    root: Path,
    model: str,
    seed: int,
    top1s: list[float],
    epochs: int | None = None,
    branches: tuple[float, float] | None = None,
    val_images: int = 2000,
    release_bytes: int = 0,
) -> Path:
    """A run dir as crossvit train + benchmarks/cifar10_runs.py leave it (top1s: one value per finished epoch)."""
    d = root / f"{model}-s{seed}"
    d.mkdir(parents=True)
    cfg = {"model": model, "seed": seed, "epochs": epochs or len(top1s), "batch_size": 64, "lr": 1e-3, "data": None}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = ["epoch,train_loss,val_loss,top1,top5,lr,train_img_s,epoch_s"]
    for i, t in enumerate(top1s):
        lines.append(f"{i + 1},{2.0 - 0.1 * i},{1.9 - 0.1 * i},{t},90.0,0.001,{40 + 10 * i},60.0")
    (d / "summary.csv").write_text("\n".join(lines) + "\n")
    if len(top1s) == cfg["epochs"]:
        v: dict = {"images": val_images, "top1": top1s[-1], "top5": 90.0}
        if branches:
            v.update(top1_branch_s=branches[0], top1_branch_l=branches[1])
        (d / "validate.json").write_text(json.dumps(v))
        (d / "run.json").write_text(json.dumps({"threads": 1}))
        rel = d / "release"
        rel.mkdir()
        (rel / "config.json").write_text("{}")
        (rel / "model.safetensors").write_bytes(b"\0" * release_bytes)
    return d


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    fake_run(root, CROSS, 0, [30.0, 55.0, 60.0], branches=(40.0, 50.0))
    fake_run(root, CROSS, 1, [31.0, 56.0, 64.0], branches=(42.0, 54.0))
    fake_run(root, SINGLE, 0, [28.0, 45.0, 50.0])
    fake_run(root, NONE, 0, [30.0, 58.0, 61.5], branches=(9.0, 61.0))
    fake_run(root, "crossvit_cifar_fuse_clstoken_36", 0, [25.0], epochs=3)  # killed after 1 epoch
    return root


def _row(md: str, model: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| `{model}` |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_read_run_and_incomplete(runs_dir: Path) -> None:
    r = R.read_run(runs_dir / f"{CROSS}-s1")
    assert (r.model, r.seed, r.epochs_done, r.complete) == (CROSS, 1, 3, True)
    assert r.top1 == 64.0 and r.best_top1 == 64.0 and r.branch("s") == 42.0
    assert r.img_s == 50.0  # median of 40, 50, 60
    assert r.wall_s == 180.0
    k = R.read_run(runs_dir / "crossvit_cifar_fuse_clstoken_36-s0")
    assert (k.epochs_done, k.complete, k.top1, k.validate) == (1, False, 25.0, None)


def test_table_figures(runs_dir: Path) -> None:
    runs = R.find_runs(runs_dir)
    md = R.render(runs, "img", "crossvit results x")
    row = _row(md, CROSS)
    std = math.sqrt(((60 - 62) ** 2 + (64 - 62) ** 2) / 1)  # sample std of two seeds
    assert row[2] == "0, 1" and row[3] == "3 of 3"
    assert row[4] == f"62.00 ± {std:.2f}" == "62.00 ± 2.83"
    assert row[5] == "41.00 ± 1.41" and row[6] == "52.00 ± 2.83"
    assert row[7] == "1.99"  # params of the registered CIFAR CrossViT (registry comment: 1.99 M)
    assert row[8] == "0.142"  # GMACs (registry comment: 0.14)
    assert row[12] == "81.0" and row[13] == "47.2 / 68.1"  # CrossViT-S, Tables 2 and 6
    single = _row(md, SINGLE)
    assert single[4] == "50.00" and single[5] == "—"
    assert float(single[7]) < 1.99  # the L branch alone is smaller
    assert "1/3 (incomplete)" in md


def test_verdicts(runs_dir: Path) -> None:
    md = R.render(R.find_runs(runs_dir), "img", "x")
    claims = md.split("## The paper's claims at this scale")[1].split("##")[0]
    # single: 62 vs 50. SE by hand: cross = max(binomial(62%, 2000) = 1.09, seed std sqrt(8) / sqrt(2) = 2.0);
    # single = binomial(50%, 2000) = 1.12
    se_single = math.hypot(math.sqrt(8) / math.sqrt(2), 100 * math.sqrt(0.5 * 0.5 / 2000))
    assert f"gap +12.00 points, SE {se_single:.2f}" in claims
    assert "single-branch baseline of its L branch: **held (gap beyond 2 SE)**" in claims
    # no fusion: 62 vs 61.5 -> within noise
    assert "beats none fusion: **held, within noise" in claims
    # the clstoken run was interrupted: not compared
    assert "beats cls_token fusion: not tested (no finished run of `crossvit_cifar_fuse_clstoken_36`)" in claims
    assert "both branch heads carry information" in claims and "S head 41.00, L head 52.00" in claims
    assert "`crossvit_cifar_fuse_none_36` S head 9.00" in claims
    assert "S head alone is near chance (<= 20%; paper: 0.1-7.6%): **held**" in claims  # 9.0 is the only other


def test_contrast_fails_and_speed_table(runs_dir: Path) -> None:
    fake_run(runs_dir, "crossvit_cifar_fuse_pairwise_36", 0, [50.0], branches=(35.0, 49.0))
    speed = {CROSS: {"img_s": 123.4, "threads": 2, "batch_size": 64, "amp": "bf16", "steps": 10}}
    md = R.render(R.find_runs(runs_dir), "img", "x", speed=speed)
    assert "near chance (<= 20%; paper: 0.1-7.6%): **did not hold**" in md
    assert "| `crossvit_cifar_36` | 123 | 2 | 64 | bf16 | 10 |" in md


def test_verdict_direction(tmp_path: Path) -> None:
    fake_run(tmp_path, CROSS, 0, [40.0], branches=(15.0, 39.0))
    fake_run(tmp_path, SINGLE, 0, [52.0])
    md = R.render(R.find_runs(tmp_path), "img", "x")
    assert "**did not hold (gap beyond 2 SE)** — 40.00 vs 52.00 (gap -12.00" in md
    assert "carry information (each alone > 2x chance = 20%): **did not hold**" in md


def test_cli_writes_page_pngs_and_release(runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "results.md"
    rel = tmp_path / "releases" / "cifar10"
    assert R.run([str(runs_dir), "--out", str(out), "--release", str(rel)]) == 0
    md = out.read_text()
    assert "![validation top-1 per epoch](img/cifar10/top1.png)" in md
    for name in ("top1.png", "train_loss.png"):
        assert (tmp_path / "docs" / "img" / "cifar10" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # best complete run: cross seed 1 (64.0)
    assert f"run `{CROSS}-s1`" in md
    assert sorted(p.name for p in rel.iterdir()) == ["config.json", "model.safetensors"]


def test_release_model(runs_dir: Path, tmp_path: Path) -> None:
    out, rel = tmp_path / "r.md", tmp_path / "rel"
    args = [str(runs_dir), "--out", str(out), "--release", str(rel), "--release-model", NONE]
    assert R.run(args) == 0
    assert f"run `{NONE}-s0`" in out.read_text() and "best complete run of this model" in out.read_text()
    assert R.run([*args[:-1], "crossvit_cifar_fuse_clstoken_36"]) == 2  # its only run was interrupted


def test_release_too_big(tmp_path: Path) -> None:
    fake_run(tmp_path, CROSS, 0, [40.0], release_bytes=10 * 2**20 + 1)
    with pytest.raises(ValueError, match="over the 10 MiB"):
        R.release(R.find_runs(tmp_path)[0], tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_bad_input(tmp_path: Path, capsys) -> None:
    assert R.run([str(tmp_path / "nope"), "--out", str(tmp_path / "o.md")]) == 2
    assert "nope: no such runs directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run directories"):
        R.find_runs(tmp_path / "empty")
    d = tmp_path / "r" / "a"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(ValueError, match=r"a/config.yaml: no 'model' key"):
        R.read_run(d)
    (d / "config.yaml").write_text("model: crossvit_cifar_36\n")
    (d / "summary.csv").write_text("epoch,top1\n1,abc\n")
    with pytest.raises(ValueError, match=r"summary.csv: row 2 holds a non-number"):
        R.read_run(d)
    assert not (tmp_path / "o.md").exists()
