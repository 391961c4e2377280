"""Evaluation of a trained model: top-1 / top-5, loss, per-class accuracy, confusion matrix, single-branch accuracy.

from crossvit.train import validate
m = validate("runs/x/release", "data/")        # data/val/ (or data/ itself) as ImageFolder; "digits" works too
m["top1"], m["top1_branch_s"], m["per_class"]["cat"]
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.build import DIGITS
from ..data.digits import digits_datasets
from ..data.folder import FolderDataset, scan_folder, split_samples
from ..data.images import BadImagePolicy
from ..io.hub import data_config, eval_transform
from ..models.model import CrossViT
from ..models.timm_model import TimmClassifier
from ..runtime.fast import to_inference
from ..runtime.int8 import is_int8
from ..runtime.source import load_model
from .engine import evaluate
from .precision import resolve_amp
from .tta import check_tta

log = logging.getLogger("crossvit")


def eval_dataset(data: str | None, model: CrossViT, transform, val_split_size: float | None = None) -> Dataset:
    """Validation images mapped onto the model's class indices (by label name when the model has names).

    ``val_split_size``: evaluate the split that ``crossvit train --val-split-size`` carves out of the folder (the
    same files, chosen by name), so a run's validation figure can be reproduced from its release.
    """
    if val_split_size is not None and val_split_size <= 0:
        raise ValueError(f"--val-split-size must be > 0 (images per class, or a fraction), got {val_split_size}")
    if data in (None, DIGITS):
        if val_split_size is not None and val_split_size >= 1:
            raise ValueError(f"--val-split-size: the digits split takes a fraction in (0, 1), got {val_split_size}")
        _, ds = digits_datasets(size=32, val_fraction=0.2 if val_split_size is None else val_split_size)
        ds.transform = transform
        classes = ds.classes
    else:
        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such data directory")
        d = root / "val" if (root / "val").is_dir() and val_split_size is None else root
        classes, samples = scan_folder(d)
        if val_split_size is not None:
            _, samples = split_samples(samples, val_split_size, seed=0)
        ds = FolderDataset(samples, classes, transform, BadImagePolicy("skip"))
    names = getattr(model, "label_names", None)
    if names and set(classes) <= set(names):
        remap = {i: names.index(c) for i, c in enumerate(classes)}
        if any(k != v for k, v in remap.items()):
            ds = _Remapped(ds, remap)
    elif len(classes) > model.num_classes:
        raise ValueError(f"{data}: {len(classes)} class folders but the model has {model.num_classes} classes")
    return ds


class _Remapped(Dataset):
    def __init__(self, ds: Dataset, remap: dict[int, int]) -> None:
        self.ds, self.remap = ds, remap

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, self.remap[y]


def validate(
    model: CrossViT | str | Path,
    data: str | Dataset | None = None,
    img_size: int | None = None,
    crop_pct: float | None = None,
    batch_size: int = 64,
    workers: int = 2,
    amp: str = "fp32",
    device: str = "cpu",
    out_dir: str | Path | None = None,
    model_name: str | None = None,
    runtime: str = "torch",
    tta: str = "none",
    val_split_size: float | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``data`` (a dataset yielding preprocessed tensors, a directory, or 'digits').

    Returns top1, top5 (%), loss (mean cross-entropy), per_class (name -> % correct, None if absent),
    top1_branch_s / top1_branch_l (each branch head alone), confusion (rows = true class), images.
    With ``out_dir``: metrics.json and confusion.png are written there. ``runtime="openvino"`` evaluates the
    OpenVINO-compiled model (``amp`` bf16 -> its bf16 precision hint); it has no per-branch accuracies.
    ``tta``: the views whose logits are averaged (``flip``, ``flip-shift``: what ``crossvit train --tta`` reports);
    ``val_split_size``: see :func:`eval_dataset`.
    """
    check_tta(tta)
    source = "model" if isinstance(model, (CrossViT, TimmClassifier)) else str(model)
    if not isinstance(model, (CrossViT, TimmClassifier)):
        model = load_model(model, model_name, img_size=img_size)
    elif img_size is not None and img_size != model.cfg.img_size[0]:
        raise ValueError(f"img_size {img_size}: rebuild the model at that size (crossvit.from_pretrained(img_size=))")
    if getattr(model, "multi_label", False):
        raise ValueError(
            f"{source}: a multi-label model (its release config says multi_label); top-1 accuracy does not apply. "
            "Its mAP and F1 are reported by training validation (crossvit train/finetune --labels-csv ...)"
        )
    dev = torch.device(device)
    model = model.to(dev).eval()
    if isinstance(data, Dataset):
        ds = data
    else:
        ds = eval_dataset(data, model, eval_transform(model, crop_pct=crop_pct), val_split_size)
    if len(ds) == 0:
        raise ValueError(f"{data}: no images to evaluate")
    dl = DataLoader(ds, batch_size=batch_size, num_workers=workers if not isinstance(data, Dataset) else 0)
    t0 = time.perf_counter()
    amp = resolve_amp(amp, dev)
    if runtime == "torch":
        m = evaluate(model, dl, dev, amp, num_classes=model.num_classes, branches=isinstance(model, CrossViT), tta=tta)
    else:
        if dev.type != "cpu":
            raise ValueError(f"--runtime {runtime} runs on the CPU; drop --device {device}")
        fast = to_inference(model, "bf16" if amp == "bf16" else "fp32", runtime=runtime)  # type: ignore[arg-type]
        m = evaluate(fast, dl, dev, "fp32", num_classes=model.num_classes, tta=tta)  # it casts fp32 inputs itself
        m["runtime"] = f"{runtime} {amp}"
    if is_int8(model):  # an int8 release: the int8 network's accuracy next to the fp32 weights it came from
        q8 = to_inference(model, "int8", runtime="openvino")
        q = evaluate(q8, dl, dev, "fp32", num_classes=model.num_classes, tta=tta)
        m["int8"] = {k: q[k] for k in ("top1", "top5", "loss")} | {"runtime": "openvino int8"}
    conf = m.pop("confusion")
    names = list(getattr(model, "label_names", None) or [str(i) for i in range(model.num_classes)])
    totals = conf.sum(1)
    m["per_class"] = {
        n: (100.0 * conf[i, i].item() / totals[i].item() if totals[i] > 0 else None) for i, n in enumerate(names)
    }
    m["confusion"] = conf.tolist()
    m["label_names"] = names
    dc = data_config(model)
    m["input_size"] = list(dc["input_size"])
    m["crop_pct"] = dc["crop_pct"] if crop_pct is None else crop_pct
    m["tta"] = tta
    m["seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        plot_confusion(conf, names, out / "confusion.png")
    return m


def plot_confusion(conf: torch.Tensor, names: list[str], path: Path) -> Path:
    import matplotlib  # loaded on first use (slow import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loaded on first use (slow import)

    k = len(names)
    size = min(20, 2 + 0.4 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    rows = conf.double() / conf.sum(1, keepdim=True).clamp(min=1)
    ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 50:
        ax.set_xticks(range(k), names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    if conf[i, j]:
                        ax.text(
                            j,
                            i,
                            int(conf[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black",
                        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (row-normalised colour, counts)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
