"""The CIFAR-10 results page: read training run directories, write the page (tables + learning-curve PNGs).

    python benchmarks/results_page.py runs/cifar10 --out docs/results-cifar10.md      # table + docs/img/cifar10/*.png
    python benchmarks/results_page.py runs/cifar10 --out docs/results-cifar10.md --release releases/cifar10  # +release

An experiment page, not part of the library: its prose, its model names and its paper twins are CIFAR-10's.

A run directory is one written by ``crossvit train``: ``config.yaml`` and ``summary.csv`` (one row per epoch), and
optionally ``validate.json`` (top-1 of the model and of each branch head; written by benchmarks/cifar10_runs.py) and
``run.json`` (threads, start/end). Runs are grouped by model; a model with several seeds gets mean ± std. Every number
in the page comes from those files, from the model registry (params, GMACs) or from :mod:`crossvit.models.paper`.
An optional ``RUNS/speed.json`` ({model: {img_s, threads, batch_size, amp, steps}}) adds a throughput table measured on
an idle machine (``python benchmarks/cifar10_runs.py speed``).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import crossvit
from crossvit.io.hub import write_card
from crossvit.io.model_card import CARD_NAME
from crossvit.models.flops import count_macs, count_params
from crossvit.models.paper import PAPER, PAPER_SINGLE_BRANCH
from crossvit.models.registry import ABLATION_FUSIONS, fusion_tag

# our CIFAR models -> the paper's ImageNet model of the same design (Tables 2 and 6)
PAPER_TWIN = {
    "crossvit_cifar_36": "crossvit_small_240",
    "crossvit_cifar_fuse_none_36": "crossvit_small_fuse_none_240",
    "crossvit_cifar_fuse_allattn_36": "crossvit_small_fuse_allattn_240",
    "crossvit_cifar_fuse_clstoken_36": "crossvit_small_fuse_clstoken_240",
    "crossvit_cifar_fuse_pairwise_36": "crossvit_small_fuse_pairwise_240",
}
CROSS = "crossvit_cifar_36"
SINGLE = "crossvit_cifar_single_36"
MAX_RELEASE_BYTES = 10 * 2**20


@dataclass
class Run:
    """One run directory, read."""

    path: Path
    model: str
    seed: int
    epochs_planned: int
    rows: list[dict[str, float | None]]
    config: dict[str, Any]
    validate: dict[str, Any] | None = None
    info: dict[str, Any] | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.rows)

    @property
    def complete(self) -> bool:
        """All its epochs, or (a --time-budget run stops before --epochs by design) a release was written: the run
        directory holds it, or benchmarks/branch_heads.py scored it into validate.json."""
        scored = (self.validate or {}).get("run_top1") is not None
        return self.epochs_done >= self.epochs_planned or (self.path / "release").is_dir() or scored

    @property
    def top1(self) -> float | None:
        """Final top-1: the validate.json figure, else the last epoch's."""
        if self.validate and self.validate.get("top1") is not None:
            return float(self.validate["top1"])
        return self.rows[-1]["top1"] if self.rows else None

    @property
    def final_top1(self) -> float | None:
        """top-1 of a finished run only (an interrupted run is not compared with finished ones)."""
        return self.top1 if self.complete else None

    @property
    def best_top1(self) -> float | None:
        vals = [r["top1"] for r in self.rows if r.get("top1") is not None]
        return max(vals) if vals else None

    def branch(self, which: str) -> float | None:
        v = (self.validate or {}).get(f"top1_branch_{which}")
        return None if v is None else float(v)

    @property
    def val_images(self) -> int | None:
        return (self.validate or {}).get("images")

    @property
    def img_s(self) -> float | None:
        vals = [r["train_img_s"] for r in self.rows if r.get("train_img_s")]
        return statistics.median(vals) if vals else None

    @property
    def wall_s(self) -> float:
        return sum(r.get("epoch_s") or 0.0 for r in self.rows)

    @property
    def threads(self) -> int | None:
        return (self.info or {}).get("threads")


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_run(path: str | Path) -> Run:
    """A :class:`Run` from a run directory; errors name the file at fault."""
    path = Path(path)
    cfg_path, csv_path = path / "config.yaml", path / "summary.csv"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing; is {path} a crossvit run directory?")
    try:
        config = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{cfg_path}: not valid YAML ({e})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise ValueError(f"{cfg_path}: no 'model' key; not a crossvit training config")
    rows: list[dict[str, float | None]] = []
    if csv_path.is_file():
        with open(csv_path) as f:
            for i, r in enumerate(csv.DictReader(f)):
                try:
                    rows.append({k: (float(v) if v not in ("", None) else None) for k, v in r.items()})
                except ValueError:
                    raise ValueError(f"{csv_path}: row {i + 2} holds a non-number: {r}") from None
    return Run(
        path=path,
        model=str(config["model"]),
        seed=int(config.get("seed", 0)),
        epochs_planned=int(config.get("epochs", len(rows))),
        rows=rows,
        config=config,
        validate=_read_json(path / "validate.json"),
        info=_read_json(path / "run.json"),
    )


def find_runs(root: str | Path) -> list[Run]:
    """Every run directory directly under ``root`` (sub-directories holding config.yaml), sorted by model, seed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such runs directory")
    runs = [read_run(d) for d in sorted(root.iterdir()) if (d / "config.yaml").is_file()]
    if not runs:
        raise ValueError(f"{root}: no run directories (sub-directories with config.yaml) found")
    return sorted(runs, key=lambda r: (r.model, r.seed))


# --- statistics -----------------------------------------------------------------------------------------------------
@dataclass
class Group:
    """All runs of one model."""

    model: str
    runs: list[Run] = field(default_factory=list)

    def values(self, get) -> list[float]:
        return [v for v in (get(r) for r in self.runs) if v is not None]

    def mean_std(self, get) -> tuple[float | None, float | None]:
        v = self.values(get)
        if not v:
            return None, None
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else None)

    @property
    def top1(self) -> tuple[float | None, float | None]:
        return self.mean_std(lambda r: r.final_top1)

    @property
    def val_images(self) -> int | None:
        v = self.values(lambda r: r.val_images)
        return int(min(v)) if v else None


def group_runs(runs: list[Run]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for r in runs:
        groups.setdefault(r.model, Group(r.model)).runs.append(r)
    return groups


def diff_noise(a: Group, b: Group) -> float | None:
    """One standard error of mean(a) - mean(b): the larger of the binomial error of the two validation accuracies and
    the seed-to-seed spread (where a model has >1 seed). None without validation figures."""
    parts = []
    for g in (a, b):
        m, s = g.top1
        n = g.val_images
        if m is None or not n:
            return None
        k = len(g.values(lambda r: r.final_top1))
        # every run is scored on the same images, so their sampling error does not shrink with more seeds
        binom = 100.0 * math.sqrt(max(m, 0.5) / 100 * (1 - min(m, 99.5) / 100) / n)
        seed = s / math.sqrt(k) if s is not None else 0.0
        parts.append(max(binom, seed))
    return math.sqrt(sum(p * p for p in parts))


def verdict(a: Group, b: Group) -> tuple[str, float, float | None]:
    """'held' / 'did not hold' for "a beats b", and whether the gap is beyond 2 standard errors."""
    ma, mb = a.top1[0], b.top1[0]
    assert ma is not None and mb is not None
    d = ma - mb
    se = diff_noise(a, b)
    clear = se is not None and abs(d) > 2 * se
    word = "held" if d > 0 else "did not hold"
    return (f"{word} (gap beyond 2 SE)" if clear else f"{word}, within noise (|gap| <= 2 SE)"), d, se


# --- model facts ----------------------------------------------------------------------------------------------------
def model_facts(run: Run) -> tuple[float | None, float | None]:
    """(params in M, GMACs) of a run's model, from the registry; (None, None) for a name the registry lacks."""
    args = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (run.config.get("model_args") or {}).items())
    )
    return _facts(run.model, args, int(run.config.get("num_classes") or 10))


@functools.lru_cache(maxsize=64)
def _facts(model: str, args: tuple, num_classes: int) -> tuple[float | None, float | None]:
    try:
        m = crossvit.create_model(model, num_classes=num_classes, **dict(args))
    except (ValueError, KeyError, TypeError):
        return None, None
    return count_params(m) / 1e6, count_macs(m) / 1e9


# --- output ---------------------------------------------------------------------------------------------------------
def _f(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def _pm(m: float | None, s: float | None) -> str:
    if m is None:
        return "—"
    return f"{m:.2f} ± {s:.2f}" if s is not None else f"{m:.2f}"


def _paper(model: str) -> tuple[str, str]:
    twin = PAPER_TWIN.get(model)
    if twin is None or twin not in PAPER:
        return "—", "—"
    sb = PAPER_SINGLE_BRANCH.get(twin)
    return f"{PAPER[twin].top1:.1f}", (f"{sb[1]:.1f} / {sb[0]:.1f}" if sb else "—")


def plot_curves(groups: dict[str, Group], img_dir: Path) -> list[Path]:
    """top1.png and train_loss.png: one line per run, colour per model."""
    import matplotlib  # loaded on first use (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loaded on first use (slow import)

    img_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for key, label in (("top1", "validation top-1 (%)"), ("train_loss", "training loss")):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for i, g in enumerate(groups.values()):
            color = f"C{i % 10}"
            for j, r in enumerate(g.runs):
                xs = [row["epoch"] for row in r.rows if row.get(key) is not None]
                ys = [row[key] for row in r.rows if row.get(key) is not None]
                if xs:
                    ax.plot(xs, ys, marker="o", color=color, alpha=0.9 if j == 0 else 0.55,
                            label=g.model if j == 0 else None)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = img_dir / f"{key}.png"
        fig.savefig(p)
        plt.close(fig)
        out.append(p)
    return out


def best_run(runs: list[Run], model: str | None = None) -> Run | None:
    """The complete run (of ``model``, if given) with the highest final top-1 that has a release dir."""
    ok = [r for r in runs if r.complete and r.top1 is not None and (r.path / "release" / "config.json").is_file()]
    ok = [r for r in ok if model is None or r.model == model]
    return max(ok, key=lambda r: r.top1) if ok else None


def release(run: Run, dest: Path) -> Path:
    """Copy ``run``'s release dir (model.safetensors + config.json) to ``dest``; refuse one over 10 MiB."""
    src = run.path / "release"
    size = sum(p.stat().st_size for p in src.iterdir() if p.is_file())
    if size > MAX_RELEASE_BYTES:
        raise ValueError(f"{src}: {size / 2**20:.1f} MiB, over the 10 MiB release limit")
    dest.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copy2(p, dest / p.name)
    if (src / CARD_NAME).is_file():  # the copied card's snippet loads the run's release dir: point it at the copy
        write_card(dest)
    return dest


def render(
    runs: list[Run],
    img_rel: str,
    command: str,
    released: tuple[Run, str] | None = None,
    speed: dict[str, Any] | None = None,
    model_only: bool = False,
) -> str:
    """The markdown page. ``speed``: {model: {img_s, threads, batch_size, amp, steps}} measured on an idle machine."""
    groups = group_runs(runs)
    facts = {m: model_facts(g.runs[0]) for m, g in groups.items()}
    c = runs[0].config
    L: list[str] = []
    n_val = min((r.val_images for r in runs if r.val_images), default=None) or _count_images(c, "val_split")
    n_train = _count_images(c, "train_split")
    L.append(f"# CrossViT from scratch on CIFAR-10 (32 px): a {c.get('epochs')}-epoch comparison\n")
    L.append(f"<!-- generated by `{command}`; do not edit by hand -->\n")
    L.append(
        f"Recipe (from the runs' config.yaml): {c.get('epochs')} epochs, batch {c.get('batch_size')}, lr "
        f"{c.get('lr')}, warm-up {c.get('warmup_epochs')} epoch(s), AdamW wd {c.get('weight_decay')}, smoothing "
        f"{c.get('smoothing')}, RandAugment {c.get('aa')}, mixup {c.get('mixup')}, cutmix {c.get('cutmix')}, drop-path "
        f"{c.get('drop_path')}, precision {c.get('amp')}; data `{c.get('data')}` ({n_train} "
        f"training images, {n_val} validation images).\n"
    )
    L.append(
        f"**This is a {c.get('epochs')}-epoch comparison over {n_train} training images, run on a 2-core CPU.** The "
        "accuracies are far below what 200-300 epochs reach, and differences of a point or two are within the "
        f"noise of one seed and a {n_val}-image validation split; the verdicts below give one standard error "
        "(SE) of each gap and say which gaps are beyond 2 SE.\n"
    )
    L.append("## Tables 2 and 6 at 32 px\n")
    L.append(
        "top-1: final validation accuracy (mean ± std over seeds where >1 seed). S / L: accuracy of the S-branch / "
        "L-branch head alone (Table 6's single-branch accuracies). Paper: the ImageNet figure of the same design "
        "(CrossViT-S and its fusion variants, Tables 2 and 6; S / L from Table 6). img/s: median training "
        "throughput per epoch (threads as listed, shared machine). wall: minutes of training per run (mean).\n"
    )
    L.append(
        "| model | fusion | seeds | epochs | top-1 (%) | S head | L head | params (M) | GMACs | train img/s | threads "
        "| wall (min) | paper top-1 | paper S / L |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = sorted(groups, key=lambda m: (m != CROSS, m != SINGLE, m))
    for m in order:
        g = groups[m]
        r0 = g.runs[0]
        fusion = "single branch" if m == SINGLE else (r0.config.get("model_args") or {}).get("fusion") or _fusion(m)
        s_m, s_s = g.mean_std(lambda r: r.branch("s"))
        l_m, l_s = g.mean_std(lambda r: r.branch("l"))
        p, gm = facts[m]
        ep = "/".join(sorted({f"{r.epochs_done}" for r in g.runs})) + f" of {r0.epochs_planned}"
        thr = "/".join(sorted({str(r.threads) for r in g.runs if r.threads})) or "—"
        pt, ps = _paper(m)
        speeds = g.values(lambda r: r.img_s)
        L.append(
            f"| `{m}` | {fusion} | {', '.join(str(r.seed) for r in g.runs)} | {ep} | {_pm(*g.top1)} | "
            f"{_pm(s_m, s_s) if m != SINGLE else '—'} | {_pm(l_m, l_s) if m != SINGLE else '—'} | {_f(p, 2)} | "
            f"{_f(gm, 3)} | {_f(statistics.median(speeds) if speeds else None, 0)}"
            f" | {thr} | {_f(statistics.fmean([r.wall_s for r in g.runs]) / 60, 1)} | {pt} | {ps} |"
        )
    L.append("")
    if speed:
        L.append("Training throughput measured separately on the idle machine (`speed.json`, same step as the runs):\n")
        L.append("| model | train img/s | threads | batch | precision | timed steps |")
        L.append("|---|---|---|---|---|---|")
        for m in sorted(speed, key=lambda m: (m != CROSS, m != SINGLE, m)):
            v = speed[m]
            L.append(
                f"| `{m}` | {_f(v.get('img_s'), 0)} | {v.get('threads', '—')} | {v.get('batch_size', '—')} | "
                f"{v.get('amp', '—')} | {v.get('steps', '—')} |"
            )
        L.append("")
    L.append("## Every run\n")
    L.append("| run | model | seed | epochs | final top-1 | best top-1 | S head | L head | img/s | wall (min) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        L.append(
            f"| `{r.path.name}` | `{r.model}` | {r.seed} | {r.epochs_done}/{r.epochs_planned}"
            f"{'' if r.complete else ' (incomplete)'} | {_f(r.top1, 2)} | {_f(r.best_top1, 2)} | "
            f"{_f(r.branch('s'), 2)} | {_f(r.branch('l'), 2)} | {_f(r.img_s, 0)} | {_f(r.wall_s / 60, 1)} |"
        )
    total = sum(r.wall_s for r in runs)
    L.append(f"\nTotal training time of these runs: {total / 60:.1f} min ({len(runs)} runs).\n")
    L.append("## The paper's claims at this scale\n")
    L.extend(claims(groups))
    L.append("\n## Learning curves\n")
    L.append(f"![validation top-1 per epoch]({img_rel}/top1.png)\n")
    L.append(f"![training loss per epoch]({img_rel}/train_loss.png)\n")
    L.extend(next_steps(runs, groups, speed=speed))
    if released:
        r, dest = released
        L.append("## Released checkpoint\n")
        L.append(
            f"`{dest}`: run `{r.path.name}` (`{r.model}`, seed {r.seed}), final top-1 {r.top1:.2f}% on the validation "
            f"split: the best complete run{' of this model' if model_only else ''} above.\n"
        )
        L.append(
            f"    crossvit predict IMAGE --checkpoint {dest}\n"
            f"    crossvit attention IMAGE --checkpoint {dest} --out DIR\n"
        )
    return "\n".join(L) + "\n"


def next_steps(
    runs: list[Run],
    groups: dict[str, Group],
    epochs: int = 300,
    train_images: int = 45000,
    speed: dict[str, Any] | None = None,
) -> list[str]:
    """The full-schedule command and its cost at the measured throughput (idle-machine figure when there is one)."""
    cross = groups.get(CROSS) or next(iter(groups.values()))
    idle = (speed or {}).get(cross.model, {}).get("img_s")
    speeds = [idle] if idle else cross.values(lambda r: r.img_s)
    where = "on the idle machine (speed.json)" if idle else "during the runs"
    L = ["\n## With more compute\n"]
    L.append(
        f"The paper's recipe at full length: {epochs} epochs on all {train_images} training images (500 per class "
        "held out as the validation split by the pipeline), with its augmentation (RandAugment, mixup 0.8, "
        "cutmix 1.0, random erasing 0.25, drop-path 0.1) and warm-up 10% of the epochs:\n"
    )
    L.append(
        f"    crossvit train -c configs/cifar10.yaml --model {cross.model} --data ../shared/datasets/cifar10 "
        f"--val-split-size 500 --epochs {epochs} --warmup-epochs {epochs // 10} --aa rand-m9-mstd0.5-inc1 "
        "--mixup 0.8 --cutmix 1.0 --reprob 0.25 --drop-path 0.1 --output runs/cifar10-full --experiment full-s0\n"
    )
    if speeds:
        v = statistics.median(speeds)
        hours = epochs * train_images / v / 3600
        L.append(
            f"At the {v:.0f} img/s measured {where} for `{cross.model}` that is about {hours:.0f} hours per run "
            f"on this CPU ({epochs} x {train_images} images / {v:.0f} img/s, validation not counted).\n"
        )
    return L


def _fusion(model: str) -> str:
    if model == CROSS:
        return "cross_attn"
    for name in ABLATION_FUSIONS:
        if f"_fuse_{fusion_tag(name)}_" in model:
            return name
    return "—"


def _count_images(config: dict[str, Any], split_key: str) -> str:
    data = config.get("data")
    if not data:
        return "?"
    d = Path(data) / str(config.get(split_key, ""))
    if not d.is_dir():
        return "?"
    return str(sum(1 for p in d.rglob("*") if p.is_file() or p.is_symlink()))


def claims(groups: dict[str, Group]) -> list[str]:
    """One line per claim of the paper that these runs can test, with the figures it rests on."""
    out: list[str] = []
    cross = groups.get(CROSS)
    if cross is None or cross.top1[0] is None:
        return ["- No cross-attention run with a result: no claim can be tested."]

    def line(claim: str, other: Group) -> str:
        if other.top1[0] is None:
            return f"- {claim}: not tested (no finished run of `{other.model}`)."
        v, d, se = verdict(cross, other)
        se_s = f", SE {se:.2f}" if se is not None else ""
        return f"- {claim}: **{v}** — {cross.top1[0]:.2f} vs {other.top1[0]:.2f} (gap {d:+.2f} points{se_s})."

    if SINGLE in groups:
        out.append(line("Table 2: CrossViT beats the single-branch baseline of its L branch", groups[SINGLE]))
    else:
        out.append("- Table 2 (CrossViT vs single branch): not tested (no single-branch run).")
    for m in sorted(groups):
        if m not in (CROSS, SINGLE):
            out.append(line(f"Table 6: cross-attention beats {_fusion(m)} fusion", groups[m]))
    s, l_ = cross.mean_std(lambda r: r.branch("s"))[0], cross.mean_std(lambda r: r.branch("l"))[0]
    if s is not None and l_ is not None:
        chance = 100.0 / float(cross.runs[0].config.get("num_classes") or 10)
        both = min(s, l_) > 2 * chance
        others = [
            (m, g.mean_std(lambda r: r.branch("s"))[0])
            for m, g in groups.items()
            if m not in (CROSS, SINGLE) and g.mean_std(lambda r: r.branch("s"))[0] is not None
        ]
        detail = "; ".join(f"`{m}` S head {v:.2f}" for m, v in sorted(others))
        out.append(
            f"- Table 6: with cross-attention both branch heads carry information (each alone > 2x chance = "
            f"{2 * chance:.0f}%): **{'held' if both else 'did not hold'}** — S head {s:.2f}, L head {l_:.2f}"
            + (f" (other schemes: {detail})." if detail else ".")
        )
        if others:
            near = all(v <= 2 * chance for _, v in others)
            out.append(
                f"- Table 6's contrast: in the other fusion schemes the S head alone is near chance "
                f"(<= {2 * chance:.0f}%; paper: 0.1-7.6%): **{'held' if near else 'did not hold'}** — {detail}."
            )
    return out


# --- script -----------------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", help="directory whose sub-directories are run directories (config.yaml, summary.csv)")
    p.add_argument("--out", default="docs/results-cifar10.md", help="markdown page to write")
    p.add_argument("--img-dir", default=None, help="PNG directory (default: <out dir>/img/cifar10)")
    p.add_argument("--release", default=None, help="copy the best complete run's release dir here (< 10 MiB)")
    p.add_argument(
        "--release-model",
        default=None,
        help="release the best run of this model (e.g. crossvit_cifar_36: `crossvit attention` needs cross-attention)",
    )


def main(args: argparse.Namespace) -> int:
    runs = find_runs(args.runs)
    out = Path(args.out)
    img_dir = Path(args.img_dir) if args.img_dir else out.parent / "img" / "cifar10"
    plot_curves(group_runs(runs), img_dir)
    released = None
    if args.release:
        best = best_run(runs, args.release_model)
        if best is None:
            what = f" of {args.release_model}" if args.release_model else ""
            raise ValueError(f"--release: no complete run{what} with a release dir under {args.runs}")
        released = (best, str(release(best, Path(args.release))))
    try:
        img_rel = str(img_dir.resolve().relative_to(out.resolve().parent))
    except ValueError:
        img_rel = str(img_dir.resolve())
    cmd = f"python benchmarks/results_page.py {args.runs} --out {args.out}" + (
        f" --img-dir {args.img_dir}" if args.img_dir else ""
    )
    cmd += f" --release {args.release}" if args.release else ""
    cmd += f" --release-model {args.release_model}" if args.release_model else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    speed = _read_json(Path(args.runs) / "speed.json")
    out.write_text(render(runs, img_rel, cmd, released, speed, model_only=bool(args.release_model)))
    print(f"wrote {out} ({len(runs)} runs) and {img_dir}/top1.png, train_loss.png")
    return 0


def run(argv: list[str] | None = None) -> int:
    """The script: 0 on success, 2 with a one-line message when the runs or the options are wrong."""
    p = argparse.ArgumentParser(prog="results_page.py", description="CIFAR-10 results page from run directories")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return main(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"results_page.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
