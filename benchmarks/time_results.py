"""Validation top-1 against wall-clock minutes for time-budget runs: a table, a plot and a Markdown page.

    python benchmarks/time_results.py RUN_DIR [RUN_DIR ...] --out docs/results-cifar10-time.md \
        --img docs/img/cifar10-time/top1.png --copy experiments/cifar10-time \
        [--table6 T6_RUN_DIR ... --table6-copy experiments/cifar10-table6]

Reads each run directory as ``crossvit train`` writes it (config.yaml, summary.csv, train.log). Minutes count from
the start of the command: the budget's "Ns used" at the first log line (data scan and caching) plus the log's
timestamps. ``--copy`` keeps each run's small files (config, per-epoch summary, log) in the repository, since run
directories live on machines that go away.

``--table6``: the runs of benchmarks/table6_queue.sh (the fusion schemes and the single-branch baseline, each
trained by the 30-minute recipe), scored by benchmarks/branch_heads.py; each model family among them (the
``crossvit_cifar_conv_*`` and ``crossvit_cifar_conv3_*`` names) gets a section of its own: per model mean ± standard
error over seeds, each branch head's accuracy, and a verdict on each of the paper's Table 6 claims.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import re
import shutil
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import results_page as rp  # noqa: E402 - benchmarks/ is on sys.path when this script runs
import yaml  # noqa: E402

from crossvit.models.paper import PAPER, PAPER_SINGLE_BRANCH  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (.*)$")


def _ts(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_run(d: Path) -> dict:
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    rows = list(csv.DictReader((d / "summary.csv").open()))
    lines = [m.groups() for ln in (d / "train.log").read_text().splitlines() if (m := STAMP.match(ln))]
    if not lines:
        raise ValueError(f"{d / 'train.log'}: no timestamped lines")
    # Each command of a budget run logs the seconds its budget has used so far (a resumed segment: the checkpoint's
    # seconds plus its own start-up); an epoch's minutes count from the latest such line, so the time between two
    # segments of a run is not counted. A run without a budget counts from its first line.
    anchor = (_ts(lines[0][0]), 0.0)
    minutes = []
    for t, text in lines:
        if m := re.search(r"time budget \S+ \(\d+s, (\d+)s used\)", text):
            anchor = (_ts(t), float(m.group(1)))
        elif re.match(r"epoch \d+/\d+ train_loss", text):
            minutes.append((anchor[1] + _ts(t) - anchor[0]) / 60)
    top1 = [float(r["top1"]) for r in rows]
    cpu_line = next((m for _, text in lines if (m := re.match(r"cpu: (.*); (\d+) threads", text))), None)
    cpu, threads = (cpu_line.group(1), int(cpu_line.group(2))) if cpu_line else (None, None)
    return {"name": d.name, "dir": d, "cfg": cfg, "minutes": minutes[: len(top1)], "top1": top1,
            "img_s": [float(r["train_img_s"]) for r in rows], "cpu": cpu, "threads": threads}  # fmt: skip


FAMILIES = {  # registered 32-px family -> the title its Table 6 section gets
    "crossvit_cifar_conv": "Table 6 at 30 minutes",
    "crossvit_cifar_conv3": "Table 6 at 30 minutes: the three-stage tokenizer",
}
_SCHEMES = [  # name suffix -> (fusion scheme, the paper's CrossViT-S twin in Table 6)
    ("32", ("cross-attention", "crossvit_small_240")),
    ("fuse_none_32", ("none", "crossvit_small_fuse_none_240")),
    ("fuse_allattn_32", ("all-attention", "crossvit_small_fuse_allattn_240")),
    ("fuse_clstoken_32", ("class token", "crossvit_small_fuse_clstoken_240")),
    ("fuse_pairwise_32", ("pairwise", "crossvit_small_fuse_pairwise_240")),
    ("single_32", ("single branch (L only)", None)),
]
FAMILY_OF_NAME = re.compile(r"^(crossvit_cifar_conv\d*)_(?:fuse_[a-z]+_|single_)?32$")


def fusion_of(family: str) -> dict[str, tuple[str, str | None]]:
    """``family``'s models in the order of the table: model name -> (fusion scheme, paper twin)."""
    return {f"{family}_{suffix}": v for suffix, v in _SCHEMES}


def split_families(dirs: list[Path]) -> dict[str, list[Path]]:
    """Table 6 run dirs grouped by the model family their config names, in FAMILIES' order."""
    out: dict[str, list[Path]] = {}
    for d in dirs:
        model = yaml.safe_load((d / "config.yaml").read_text()).get("model", "")
        m = FAMILY_OF_NAME.match(model)
        if not m or m.group(1) not in FAMILIES:
            raise ValueError(f"{d}: model {model!r} belongs to no Table 6 family ({', '.join(FAMILIES)})")
        out.setdefault(m.group(1), []).append(d)
    return {f: out[f] for f in FAMILIES if f in out}


def _mean_se(v: list[float]) -> str:
    if not v:
        return "—"
    m = sum(v) / len(v)
    if len(v) == 1:
        return f"{m:.2f}"
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return f"{m:.2f} ± {sd / math.sqrt(len(v)):.2f}"


CHANCE = 10.0  # top-1 (%) of a constant guess on CIFAR-10's ten classes


def table6(dirs: list[Path], command: str, family: str = "crossvit_cifar_conv") -> list[str]:
    """The Table 6 section of one model family: one row per model, then the paper's claims, each with the figures it
    rests on."""
    schemes = fusion_of(family)
    cross_name, single_name = f"{family}_32", f"{family}_single_32"
    title = f"## {FAMILIES[family]}"
    runs = [rp.read_run(d) for d in dirs]
    groups = rp.group_runs([r for r in runs if r.complete])
    if cross_name not in groups:
        return [title, "", "No finished cross-attention run: nothing to compare.", ""]
    timed = {d.name: read_run(d) for d in dirs}
    cpus = sorted({t["cpu"] or "unknown CPU" for t in timed.values()})
    threads = sorted({t["threads"] or 0 for t in timed.values()})
    rows = []
    for model in sorted(groups, key=lambda m: list(schemes).index(m) if m in schemes else 99):
        g = groups[model]
        fusion, twin = schemes.get(model, (model, None))
        params, gmacs = rp.model_facts(g.runs[0])
        top1 = g.values(lambda r: r.final_top1)
        heads = [_mean_se(g.values(lambda r, b=b: r.branch(b))) for b in "sl"]
        epochs = [len(timed[r.path.name]["top1"]) for r in g.runs]
        img_s = [_median(timed[r.path.name]["img_s"]) for r in g.runs]
        paper = PAPER.get(twin) if twin else None
        pl, ps = PAPER_SINGLE_BRANCH.get(twin, (None, None)) if twin else (None, None)
        rows.append(
            f"| {fusion} | `{model}` | {rp._f(params, 2)} | {rp._f(gmacs, 3)} | {len(top1)} | **{_mean_se(top1)}** | "
            f"{', '.join(f'{v:.2f}' for v in top1)} | {heads[0]} | {heads[1]} | {min(epochs)}-{max(epochs)} | "
            f"{min(img_s):.0f}-{max(img_s):.0f} | {paper.top1 if paper else '—'} | "
            f"{f'{pl} / {ps}' if pl is not None else '—'} |"
        )
    cross = groups[cross_name]

    def claim(text: str, other: str) -> str:
        if other not in groups:
            return f"- {text}: not tested (no finished run of `{other}`)."
        v, d, se = rp.verdict(cross, groups[other])
        se_s = f", 1 SE of the gap {se:.2f}" if se is not None else ""
        return f"- {text}: **{v}** — {cross.top1[0]:.2f} vs {groups[other].top1[0]:.2f} (gap {d:+.2f} points{se_s})."

    out = [claim("CrossViT beats its single-branch baseline (Table 2's claim, here at equal wall time)", single_name)]
    for model, (fusion, _) in schemes.items():
        if model not in (cross_name, single_name):
            out.append(claim(f"Table 6: cross-attention fusion beats {fusion} fusion", model))
    aa, ct = f"{family}_fuse_allattn_32", f"{family}_fuse_clstoken_32"
    if aa in groups and ct in groups:
        _, d, se = rp.verdict(groups[ct], groups[aa])  # d > 0: class token ahead
        worse = se is not None and d < -2 * se  # all-attention ahead beyond the noise
        word = "did not hold" if worse else ("held" if d >= 0 else "held, within noise")
        out.append(
            f"- Table 6: all-attention is no better than class-token fusion, despite its extra self-attention: "
            f"**{word}** — class token {groups[ct].top1[0]:.2f} vs all-attention {groups[aa].top1[0]:.2f} "
            f"(gap {d:+.2f} points{f', 1 SE {se:.2f}' if se is not None else ''})."
        )
    stuck = [schemes.get(m, (m,))[0] for m, g in groups.items() if max(g.values(lambda r: r.final_top1)) <= CHANCE + 1]
    if stuck:  # at chance (10 % on CIFAR-10) in every seed: beating it says nothing about the scheme itself
        out.append(
            f"- Not trained: {', '.join(stuck)} ended at chance ({CHANCE:g} %) in every run, so a claim won against it "
            "shows only that this recipe did not train it, not that the scheme is worse."
        )
    s_heads = {m: g.mean_std(lambda r: r.branch("s"))[0] for m, g in groups.items() if m != single_name}
    if s_heads.get(cross_name) is not None:
        chance, cs = CHANCE, s_heads[cross_name]
        others = {m: v for m, v in s_heads.items() if m != cross_name and v is not None}
        detail = "; ".join(f"{schemes.get(m, (m,))[0]} {v:.2f}" for m, v in others.items())
        # with no other scheme scored there is nothing to be higher than: not a pass
        verdict = ("**held**" if all(cs > v for v in others.values()) else "**did not hold**") if others else (
            "not tested (no other scheme's S head scored)")  # fmt: skip
        out.append(
            f"- Table 6: with cross-attention the S branch's own head carries the most information of any scheme "
            f"(paper: 47.2 % against 0.1-7.6 %): {verdict} — cross-attention S "
            f"head {cs:.2f} % (chance {chance:.0f} %){'; ' + detail if detail else ''}."
        )
    return [
        title,
        "",
        f"<!-- generated by `{command}`; do not edit by hand -->",
        "",
        "Each run is `configs/cifar10_30min.yaml` with only `--model` and `--seed` changed "
        "(`bash benchmarks/table6_queue.sh`): two runs at a time, each pinned to its own core with "
        f"{', '.join(str(t) for t in threads)} thread(s), so each had half the machine for its 30 minutes; all "
        f"of them ran that way. CPU: {'; '.join(cpus)}. top-1: the last validation (EMA weights, flip TTA) on "
        "the 5,000 held-out images, mean ± standard error over seeds; S / L head: the same model scored by one "
        "branch's head alone (`python benchmarks/branch_heads.py RUN_DIR`). A verdict is *within noise* when the "
        "gap is at most 2 standard errors (the larger of the binomial error of 5,000 images and the seed spread, "
        "per model). Paper: CrossViT-S on ImageNet, 300 epochs (Table 6).",
        "",
        "| fusion | model | params (M) | GMACs | runs | top-1 (%) | per seed | S head | L head | epochs | "
        "train img/s | paper top-1 | paper L / S head |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "What held:",
        "",
        *out,
        "",
    ]


def _median(v: list[float]) -> float:
    return sorted(v)[len(v) // 2] if v else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--img", type=Path, required=True)
    ap.add_argument("--copy", type=Path, help="keep each run's config, summary and log under this folder")
    ap.add_argument(
        "--cpu",
        action="append",
        default=[],
        help="CPU of the runs whose log does not name it (older runs): TEXT for all of them, or RUN_NAME=TEXT",
    )
    ap.add_argument("--table6", nargs="+", type=Path, default=[], help="run dirs of benchmarks/table6_queue.sh")
    ap.add_argument("--table6-copy", type=Path, help="keep the Table 6 runs' small files under this folder")
    args = ap.parse_args()
    runs = [read_run(d) for d in args.runs]
    given = dict(c.split("=", 1) if "=" in c.split(" ")[0] else ("", c) for c in args.cpu)
    for r in runs:
        r["cpu"] = r["cpu"] or given.get(r["name"]) or given.get("") or platform.processor() or "unknown CPU"
    cpus = sorted({r["cpu"] for r in runs})
    args.img.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        ax.plot(r["minutes"], r["top1"], marker="o", ms=3, label=r["name"])
    ax.set_xlabel("wall-clock minutes (whole command)")
    ax.set_ylabel("validation top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.img, dpi=120)
    rows = []
    for r in runs:
        c = r["cfg"]
        arch = c.get("model") + (f" + {c['model_args']}" if c.get("model_args") else "")
        if str(c.get("model", "")).startswith("timm/"):  # a CNN takes any size: say which one it trained at
            arch += f" @ {c.get('img_size')} px"
        if c.get("teacher"):  # a release dir inside a run dir: name the teacher by its run
            t = Path(c["teacher"])
            arch += f"`, {c.get('distill')} distillation from `{t.parent.name if t.name == 'release' else t.name}"
        rows.append(
            f"| `{r['name']}` | `{arch}` | {c.get('batch_size')} / {c.get('lr'):g}"
            f"{' / compiled' if c.get('compile') else ''} | {c.get('time_budget')} | {len(r['top1'])} | "
            f"{r['top1'][-1]:.2f} | "
            f"{max(r['top1']):.2f} | {r['minutes'][-1]:.1f} | {sorted(r['img_s'])[len(r['img_s']) // 2]:.0f} | "
            f"{chr(65 + cpus.index(r['cpu']))}{', 1 thread' if r['threads'] == 1 else ''} |"
        )
        if args.copy and (args.copy / r["name"]).resolve() != r["dir"].resolve():  # not when reading the copies
            dst = args.copy / r["name"]
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("config.yaml", "summary.csv", "train.log"):
                shutil.copy2(r["dir"] / f, dst / f)
    rel = os.path.relpath(args.img, args.out.parent)
    text = [
        "## Runs",
        "",
        f"<!-- generated by `python benchmarks/time_results.py {' '.join(str(d) for d in args.runs)} --out {args.out} "
        f"--img {args.img}{''.join(f' --cpu {c!r}' for c in args.cpu)}`; do not edit by hand -->",
        "",
        "CPUs: " + "; ".join(f"**{chr(65 + i)}** {c}" for i, c in enumerate(cpus)) + ". "
        "final: validation top-1 after the last epoch (EMA weights, flip TTA); minutes: the whole "
        "command, data caching and validation included (the last one is the end of training; the final "
        "evaluation and release follow within seconds); CPU: both logical CPUs unless it says 1 thread (such runs "
        "went two at a time, each pinned to its own core).",
        "",
        "| run | model | batch / lr | budget | epochs | final top-1 | best top-1 | minutes | train img/s (median) "
        "| CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"![validation top-1 against minutes]({rel})",
        "",
    ]
    if args.table6:
        for d in args.table6:
            dst = args.table6_copy / d.name if args.table6_copy else None
            if dst is not None and dst.resolve() != d.resolve():
                dst.mkdir(parents=True, exist_ok=True)
                for f in ("config.yaml", "summary.csv", "train.log", "validate.json"):
                    if (d / f).is_file():
                        shutil.copy2(d / f, dst / f)
        t6_dirs = [args.table6_copy / d.name for d in args.table6] if args.table6_copy else args.table6
        for family, dirs in split_families(t6_dirs).items():  # a section per family, each its own verdicts
            command = f"python benchmarks/time_results.py ... --table6 {' '.join(str(d) for d in dirs)}"
            text += table6(dirs, command, family)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head = args.out.read_text().split("## Runs")[0] if args.out.exists() else "# CIFAR-10 against the clock\n\n"
    args.out.write_text(head + "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
