"""``crossvit export``: ONNX or TorchScript with a dynamic batch axis, checked against PyTorch after export.

    crossvit export --checkpoint runs/demo/release --format onnx --out crossvit.onnx
    crossvit export --checkpoint w.safetensors --model crossvit_9_240 --format torchscript --out crossvit.pt

After export the file is run (ONNX through onnxruntime) on random batches of a size other than the traced one
and on real photos (scikit-image's samples, or ``--images``) through the model's own preprocessing; the max
absolute logit difference to PyTorch is printed and must be <= ``--atol`` (1e-4, fp32), else exit status 1.

The L branch's in-model bicubic resize (``F.interpolate(mode="bicubic", align_corners=False)``, 240 -> 224 px
for the released models) exports as one ONNX ``Resize`` node (opset >= 11) with ``mode=cubic``,
``cubic_coeff_a=-0.75`` and ``coordinate_transformation_mode=half_pixel``: PyTorch's kernel exactly. The tool
reads the node back and prints its attributes. The default exporter is PyTorch's TorchScript-based one
(``dynamo=False``); ``--exporter dynamo`` uses ``torch.export`` and needs ``pip install onnxscript``.
The model's preprocessing and label names are stored in the file (ONNX metadata_props / TorchScript extra file
``crossvit.json``) so a runtime user can preprocess without this package.

``--format release --dtype fp16`` re-saves a release (or checkpoint) in the release format with half-precision
weights, half the file size, keeping its label names and training record; the check loads the written release back
and compares its logits with the fp32 original's (default tolerance 5e-2 for fp16, 2.5e-1 for bf16).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..io.hub import (
    CARRIED_KEYS,
    CONFIG_NAME,
    data_config,
    eval_transform,
    from_pretrained,
    load_config,
    save_pretrained,
)
from ..io.images import as_pil
from ..models.model import CrossViT

log = logging.getLogger("crossvit")

FORMATS = ("onnx", "torchscript", "release")
EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = 11  # first opset whose Resize has cubic_coeff_a and half_pixel
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee")
_SUFFIX = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
# Max abs logit difference a release stored at this precision may show against the fp32 model it came from.
RELEASE_ATOL = {"fp32": 1e-4, "fp16": 5e-2, "bf16": 2.5e-1}  # keys: io.hub.WEIGHT_DTYPES


def check_format(fmt: str | None, out: Path | None = None) -> str:
    """The export format, given or implied by the output suffix; a clear error for anything else."""
    if fmt is None and out is not None:
        fmt = _SUFFIX.get(out.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the format from {out}; pass --format ({', '.join(FORMATS)})")
    if fmt not in FORMATS:
        raise ValueError(f"unsupported export format {fmt!r}; supported formats: {', '.join(FORMATS)}")
    return fmt


def metadata(model: CrossViT) -> dict[str, str]:
    """What a runtime needs besides the graph: preprocessing, label names, architecture."""

    dc = data_config(model)
    return {
        "crossvit_data_config": json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in dc.items()}),
        "crossvit_label_names": json.dumps(getattr(model, "label_names", None)),
        "crossvit_config": json.dumps(model.cfg.to_dict()),
    }


def _prepared(model: CrossViT, attention: str = "sdpa") -> CrossViT:
    """An fp32 CPU eval copy. ``attention="math"`` spells attention out as MatMul/Softmax, which every opset and
    runtime has (SDPA exists in ONNX only from opset 14, and the exporter decomposes it into the same ops)."""
    m = copy.deepcopy(model).float().cpu().eval()
    if hasattr(m, "set_attention_impl"):  # a timm model (a CNN teacher) has no attention to choose
        m.set_attention_impl(attention)  # type: ignore[arg-type]
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def export_onnx(
    model: CrossViT, out: str | Path, opset: int | None = None, exporter: str = "torchscript", batch: int = 2
) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis (input ``images``, output ``logits``).

    ``opset`` defaults to 17 for the TorchScript-based exporter and 18 (its minimum) for the dynamo one.
    """
    import onnx  # optional dependency

    opset = opset or (18 if exporter == "dynamo" else 17)
    if opset < MIN_OPSET:
        raise ValueError(f"--opset {opset}: the bicubic resize needs opset >= {MIN_OPSET} (Resize with cubic_coeff_a)")
    if exporter not in EXPORTERS:
        raise ValueError(f"unsupported exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    m = _prepared(model, "math")
    x = torch.randn(batch, m.cfg.in_chans, *m.cfg.img_size)  # (B, C, H, W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the constant input-size checks, deprecations
        if exporter == "dynamo":
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise ValueError("--exporter dynamo needs onnxscript: pip install onnxscript") from None
            batch_dim = torch.export.Dim("batch", min=1, max=4096)
            prog = torch.onnx.export(
                m, (x,), dynamo=True, opset_version=opset, input_names=["images"], output_names=["logits"],
                dynamic_shapes={"x": {0: batch_dim}}, verbose=False,
            )  # fmt: skip
            prog.save(str(out))
        else:
            torch.onnx.export(
                m, (x,), str(out), dynamo=False, opset_version=opset, input_names=["images"], output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True,
            )  # fmt: skip
    proto = onnx.load(str(out))
    for k, v in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(out))
    return out


def export_torchscript(model: CrossViT, out: str | Path, batch: int = 2) -> Path:
    """Trace ``model`` to TorchScript (batch size stays free: shapes are read from the input at run time)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    m = _prepared(model)
    x = torch.randn(batch, m.cfg.in_chans, *m.cfg.img_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, x, check_trace=False)
    extra = {"crossvit.json": json.dumps(metadata(model))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        torch.jit.save(traced, str(out), _extra_files=extra)
    return out


def export_release(model: CrossViT, out: str | Path, weights_dtype: str, source: str | Path | None = None) -> Path:
    """Write ``model`` as a release dir with ``weights_dtype`` weights; a release ``source`` lends its training
    record (and multi-label settings) to the new config.json. Refuses to write over ``source`` itself."""
    out = Path(out)
    extra: dict[str, Any] = {}  # save_pretrained checks weights_dtype
    if source is not None:
        src = Path(source)
        src_dir = src if src.is_dir() else src.parent
        if out.exists() and out.resolve() == src_dir.resolve():
            raise ValueError(f"--out {out}: is the source release itself; write the copy to another directory")
        if (src_dir / CONFIG_NAME).is_file() and (src.is_dir() or src.name == CONFIG_NAME):
            config = load_config(src_dir / CONFIG_NAME)
            extra = {k: config[k] for k in CARRIED_KEYS if k in config}
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a release is a directory, and this is a file")
    return save_pretrained(model, out, extra=extra, weights_dtype=weights_dtype)


def resize_nodes(path: str | Path) -> list[dict[str, Any]]:
    """Attributes of every ONNX Resize node (mode, cubic_coeff_a, coordinate_transformation_mode)."""
    import onnx  # optional dependency

    found = []
    for node in onnx.load(str(path)).graph.node:
        if node.op_type == "Resize":
            found.append({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute})
    for d in found:
        for k, v in d.items():
            if isinstance(v, bytes):
                d[k] = v.decode()
    return found


class Runner:
    """Runs an exported file on a (B, C, H, W) fp32 batch and returns (B, num_classes) logits as numpy."""

    def __init__(self, path: str | Path, fmt: str) -> None:
        self.fmt = fmt
        if fmt == "release":  # loaded back as a user would: weights cast to the fp32 model on load
            self.module = from_pretrained(path).float().eval()
        elif fmt == "onnx":
            import onnxruntime as ort  # optional dependency

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self.input_name = self.sess.get_inputs()[0].name
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), map_location="cpu")

    def __call__(self, x: Tensor) -> np.ndarray:
        if self.fmt == "onnx":
            return self.sess.run(None, {self.input_name: x.numpy()})[0]
        with torch.no_grad():
            return self.module(x).numpy()


@dataclass
class CheckRow:
    name: str
    batch: int
    max_abs_diff: float
    top1_agree: int
    max_abs_logit: float = 0.0  # scale of the PyTorch logits, to read the difference against

    def ok(self, atol: float) -> bool:
        return self.max_abs_diff <= atol and self.top1_agree == self.batch


def photo_batch(model: CrossViT, images: list[str] | None = None) -> tuple[Tensor, list[str]] | None:
    """Real images through the model's eval transform: ``images`` paths, else scikit-image's sample photos."""

    tf = eval_transform(model)
    if images:
        return torch.stack([tf(as_pil(p)) for p in images]), [Path(p).name for p in images]
    try:
        import skimage.data  # optional dependency
    except ImportError:
        return None
    pics = [as_pil(getattr(skimage.data, n)()) for n in SAMPLE_PHOTOS]
    return torch.stack([tf(p) for p in pics]), list(SAMPLE_PHOTOS)  # (3, C, H, W)


def check_export(
    model: CrossViT, path: str | Path, fmt: str, photos: tuple[Tensor, list[str]] | None, seed: int = 0
) -> list[CheckRow]:
    """Max |logits_export - logits_torch| on random batches of 1 and 3 (not the traced 2) and on photos."""
    m = _prepared(model)
    run = Runner(path, fmt)
    g = torch.Generator().manual_seed(seed)
    cases = [(f"random N(0,1) batch {b}", torch.randn(b, m.cfg.in_chans, *m.cfg.img_size, generator=g)) for b in (1, 3)]
    if photos is not None:
        cases.append((f"photos ({', '.join(photos[1])})", photos[0]))
    rows = []
    for name, x in cases:
        with torch.no_grad():
            ref = m(x).numpy()  # (B, num_classes)
        got = run(x)
        agree = int((ref.argmax(-1) == got.argmax(-1)).sum()) if ref.ndim == 2 and ref.shape[-1] > 1 else len(x)
        rows.append(CheckRow(name, len(x), float(np.abs(ref - got).max()), agree, float(np.abs(ref).max())))
    return rows
