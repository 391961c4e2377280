"""``crossvit predict``: top-k classes for image files, folders (recursive) and glob patterns.

    crossvit predict photos/ 'more/*.jpg' --checkpoint runs/demo/release            # a release dir
    crossvit predict cat.jpg --checkpoint weights.safetensors --model crossvit_9_240 --format json --output out.json

Output formats: ``table`` (default, one line per image), ``json`` (a list of {"image", "topk": [{"label",
"index", "prob"}], "error"}), ``csv`` (one row per image: image, label_1, prob_1, ..., label_k, prob_k, error).
An image that cannot be read gets its own error line / ``error`` field and the others are still predicted.
Exit status: 0 when at least one image was predicted, 1 when none could be read, 2 for bad arguments or a
checkpoint that cannot be loaded. Without label names in the checkpoint's config, class indices are printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path

from ..io.images import expand_paths
from ..runtime.fast import to_inference
from ..runtime.inference import label_names, load_model, predict
from ..runtime.int8 import pick_precision

log = logging.getLogger("crossvit")
FORMATS = ("table", "json", "csv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "An unreadable image gets its own error line (JSON/CSV: an 'error' field); the others are still predicted. "
        "Exit status: 0 if at least one image was predicted, 1 if none could be read, 2 for bad arguments or a "
        "checkpoint that cannot be loaded."
    )
    p.add_argument("paths", nargs="+", help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--checkpoint", required=True, help="release dir (config.json + model.safetensors) or weights file")
    p.add_argument("--model", help="architecture name when --checkpoint is a bare weights file")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="multi-label models: print every label whose probability is above this (default: the release's)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--format", default="table", help=f"output format: {', '.join(FORMATS)} (default table)")
    p.add_argument("--output", type=Path, help="write the results here instead of stdout")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--precision",
        default=None,
        choices=("fp32", "bf16", "fp16", "int8"),
        help="inference precision: bf16 casts the weights (about 2x faster on CPUs with AMX / AVX512-BF16; top-1 "
        "agrees with fp32 on >99%% of real images, docs/performance.md); fp16 is for CUDA; int8 needs an int8 "
        "release (crossvit quantize) and runs on OpenVINO (default: int8 for an int8 release, else fp32)",
    )
    p.add_argument(
        "--runtime",
        default=None,
        choices=("torch", "openvino"),
        help="torch, or openvino (CPU; pip install openvino): same preprocessing and outputs (default torch; "
        "openvino for int8)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile with freezing (slow start, faster batches)")


def format_table(preds: list) -> str:
    width = min(60, max((len(p.source) for p in preds), default=5))
    lines = []
    for p in preds:
        name = p.source if len(p.source) <= width else "..." + p.source[-(width - 3) :]
        if p.error:
            lines.append(f"{name:<{width}}  error: {p.error.removeprefix(p.source + ': ')}")
        else:
            lines.append(f"{name:<{width}}  " + "  ".join(f"{lab} {prob:.4f}" for lab, prob in p.topk))
    return "\n".join(lines) + "\n"


def format_json(preds: list) -> str:
    return json.dumps([p.to_dict() for p in preds], indent=1) + "\n"


def format_csv(preds: list, k: int) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image"] + [f"{c}_{r}" for r in range(1, k + 1) for c in ("label", "prob")] + ["error"])
    for p in preds:
        cells: list[object] = []
        for r in range(k):
            cells += [p.topk[r][0], f"{p.topk[r][1]:.6f}"] if r < len(p.topk) else ["", ""]
        w.writerow([p.source, *cells, p.error or ""])
    return buf.getvalue()


def main(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise ValueError(f"--format {args.format!r} is not supported; choose one of {', '.join(FORMATS)}")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.topk < 1 or args.batch_size < 1:
        raise ValueError(f"--topk and --batch-size must be >= 1, got {args.topk} and {args.batch_size}")
    sources = expand_paths(args.paths)
    if not sources:
        raise FileNotFoundError(f"no image files found under {', '.join(args.paths)}")
    model = load_model(args.checkpoint, args.model, args.device)
    if label_names(model) is None:
        print(
            f"crossvit predict: note: {args.checkpoint} has no label names (config.json 'label_names'); "
            "printing class indices",
            file=sys.stderr,
        )
    precision, runtime = pick_precision(model, args.precision, args.runtime)
    run = model
    if precision != "fp32" or runtime != "torch" or args.compile:
        run = to_inference(model, precision, compile=args.compile, runtime=runtime)  # type: ignore[arg-type]
    preds = predict(run, sources, topk=args.topk, batch_size=args.batch_size, threshold=args.threshold)
    multi = bool(getattr(model, "multi_label", False))
    if multi:
        cut = args.threshold if args.threshold is not None else model.threshold
        print(f"crossvit predict: multi-label model: labels with probability > {cut:g}", file=sys.stderr)
    k = model.num_classes if multi else min(args.topk, model.num_classes)
    text = {"table": format_table, "json": format_json, "csv": lambda ps: format_csv(ps, k)}[args.format](preds)
    failed = [p for p in preds if not p.ok]
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        for p in failed:
            print(f"crossvit predict: error: {p.error}", file=sys.stderr)
        print(f"wrote {len(preds)} results to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    ok = len(preds) - len(failed)
    if failed:
        print(f"crossvit predict: {ok} of {len(preds)} images predicted, {len(failed)} unreadable", file=sys.stderr)
    return 0 if ok else 1
