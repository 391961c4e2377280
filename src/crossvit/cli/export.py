"""``crossvit export --checkpoint SRC --format onnx --out FILE``: :mod:`crossvit.runtime.export`, then the check.

``crossvit export --checkpoint runs/x/release --format release --dtype fp16 --out releases/x-fp16`` re-saves a
release with half-precision weights (half the file), checked the same way after loading it back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.export import (
    FORMATS,
    MIN_OPSET,
    RELEASE_ATOL,
    check_export,
    check_format,
    export_onnx,
    export_release,
    export_torchscript,
    photo_batch,
    resize_nodes,
)
from ..runtime.inference import load_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="release dir (config.json + model.safetensors) or weights file")
    p.add_argument("--model", help="architecture name when --checkpoint is a bare weights file")
    p.add_argument("--format", help=f"{' or '.join(FORMATS)} (default: from the --out suffix)")
    p.add_argument("--out", type=Path, required=True, help="file to write (.onnx, .pt), or a directory for a release")
    p.add_argument("--dtype", default="fp32", help="--format release: weight storage fp32, fp16 or bf16")
    p.add_argument("--opset", type=int, help=f"ONNX opset (>= {MIN_OPSET}; default 17, 18 with --exporter dynamo)")
    p.add_argument("--exporter", default="torchscript", help="ONNX exporter: torchscript (default) or dynamo")
    p.add_argument("--images", nargs="*", help="photos for the check (default: scikit-image's sample photos)")
    p.add_argument(
        "--atol", type=float, help="max abs logit difference accepted (default 1e-4; a release: 5e-2 fp16, 2.5e-1 bf16)"
    )
    p.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def main(args: argparse.Namespace) -> int:
    fmt = check_format(args.format, args.out)
    if args.dtype != "fp32" and fmt != "release":
        raise ValueError(f"--dtype {args.dtype}: only --format release stores other weight precisions")
    if fmt == "release" and args.dtype not in RELEASE_ATOL:
        raise ValueError(f"--dtype {args.dtype!r}: choose one of {', '.join(RELEASE_ATOL)}")
    atol = args.atol if args.atol is not None else RELEASE_ATOL[args.dtype] if fmt == "release" else 1e-4
    model = load_model(args.checkpoint, args.model)
    # Read the check's photos first: a bad --images file must fail before anything is written to --out.
    photos = None if args.no_check else photo_batch(model, args.images)
    if fmt == "release":
        export_release(model, args.out, args.dtype, source=args.checkpoint)
        size_mb = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file()) / 2**20
        print(f"wrote {args.out} (release, {args.dtype} weights, {size_mb:.1f} MB)")
    elif fmt == "onnx":
        export_onnx(model, args.out, opset=args.opset, exporter=args.exporter)
        import onnx  # optional dependency

        opset = next(o.version for o in onnx.load(str(args.out)).opset_import if o.domain in ("", "ai.onnx"))
        detail = f"opset {opset}, {args.exporter} exporter"
    else:
        export_torchscript(model, args.out)
        detail = "torch.jit.trace"
    if fmt != "release":
        size_mb = args.out.stat().st_size / 2**20
        print(f"wrote {args.out} ({fmt}, {detail}, {size_mb:.1f} MB, dynamic batch axis)")
    if fmt == "onnx" and hasattr(model.cfg, "branch_img_size"):  # a CrossViT: its L branch resizes in-model
        branches = model.cfg.branch_img_size
        for r in resize_nodes(args.out):
            print(
                f"  Resize node: mode={r.get('mode')} cubic_coeff_a={r.get('cubic_coeff_a')} "
                f"coordinate_transformation_mode={r.get('coordinate_transformation_mode')} "
                f"(L branch {model.cfg.img_size[0]} -> {branches[1][0]} px)"
            )
    if args.no_check:
        return 0
    if photos is None:
        print("  note: scikit-image is not installed: the real-photo check is skipped (or pass --images)")
    rows = check_export(model, args.out, fmt, photos)
    runtime = {"onnx": "onnxruntime", "torchscript": "torch.jit.load", "release": "from_pretrained"}[fmt]
    print(f"check against PyTorch (fp32 logits, {runtime}, tolerance {atol:g}):")
    for r in rows:
        verdict = "ok" if r.ok(atol) else "FAILED"
        print(
            f"  {r.name:<38} max abs diff {r.max_abs_diff:.2e} (logits up to {r.max_abs_logit:.2g})  "
            f"top-1 agree {r.top1_agree}/{r.batch}  {verdict}"
        )
    passed = all(r.ok(atol) for r in rows)
    print("PASS" if passed else f"FAIL: the exported model differs from PyTorch by more than {atol:g}")
    return 0 if passed else 1
