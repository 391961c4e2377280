"""``crossvit quantize``: NNCF post-training int8 quantization for OpenVINO, written as a release every tool loads.

    crossvit quantize --checkpoint runs/x/release --calibration data/train --out runs/x/int8
    crossvit predict photos/ --checkpoint runs/x/int8          # runs the int8 network (OpenVINO)
    crossvit validate runs/x/int8 data/                        # int8 top-1 next to the fp32 weights' top-1

Calibration images (a few hundred: ``--images``, a seeded sample of the folder) go through the model's own
evaluation transform. The output folder holds the fp32 release it came from plus ``openvino_int8.xml/.bin``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from torch import nn

from ..io.hub import save_pretrained
from ..io.weights import file_sha256
from ..runtime.inference import load_model
from ..runtime.int8 import DEFAULT_CALIBRATION, INT8_KEY, IR_BIN, IR_XML, Int8Model, quantize


def save_int8_release(model: nn.Module, int8: Int8Model, out: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write the fp32 release of ``model`` plus ``int8``'s network into ``out`` (a new or empty folder), atomically:
    everything goes into a temporary sibling folder that is renamed into place at the end.
    """
    import openvino as ov  # optional dependency

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        ov.save_model(int8.ov_model, str(tmp / IR_XML), compress_to_fp16=False)
        meta = {
            "runtime": "openvino",
            "ir": IR_XML,
            "ir_weights": IR_BIN,
            "ir_sha256": file_sha256(tmp / IR_BIN),
            "calibration_images": int8.calibration_images,
            "openvino": ov.__version__,
            **(info or {}),
        }
        save_pretrained(model, tmp, extra={INT8_KEY: meta})
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="release dir, run dir or weights file (+ --model)")
    p.add_argument("--model", help="architecture name when --checkpoint is a bare weights file")
    p.add_argument("--calibration", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--images", type=int, default=DEFAULT_CALIBRATION, help="calibration images (default 300)")
    p.add_argument("--out", required=True, type=Path, help="new folder for the int8 release")
    p.add_argument("--threads", type=int, default=None, help="OpenVINO threads (default torch's)")


def main(args: argparse.Namespace) -> int:
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ValueError(f"--out {args.out}: exists and is not an empty folder; choose a new one")
    if not args.calibration.is_dir():
        raise NotADirectoryError(f"--calibration {args.calibration}: not a folder of images")
    model = load_model(args.checkpoint, args.model)
    t0 = time.perf_counter()
    q = quantize(model, args.calibration, args.images, args.threads)
    info = {"source": str(args.checkpoint), "calibration": str(args.calibration)}
    out = save_int8_release(model, q, args.out, info)
    print(f"quantized with {q.calibration_images} calibration images in {time.perf_counter() - t0:.1f} s")
    print(f"wrote {out} (int8 OpenVINO network + the fp32 release it came from)")
    return 0
