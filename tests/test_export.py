"""``crossvit export``: ONNX / TorchScript parity with PyTorch, dynamic batch, and the in-model bicubic resize."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import crossvit
from conftest import TINY_ARGS
from crossvit.cli import main as cli
from crossvit.io.hub import WEIGHT_DTYPES
from crossvit.runtime.export import (
    RELEASE_ATOL,
    Runner,
    check_export,
    check_format,
    export_onnx,
    export_torchscript,
    photo_batch,
    resize_nodes,
)

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def tiny(**kw) -> crossvit.CrossViT:
    cfg = crossvit.CrossViTConfig(**TINY_ARGS, num_classes=5).replace(**kw)
    torch.manual_seed(0)
    m = crossvit.CrossViT(cfg).eval()
    m.label_names = list("abcde")
    return m


def keys_bicubic(img: np.ndarray, out_h: int, out_w: int, a: float = -0.75) -> np.ndarray:
    """Independent reference: separable Keys cubic convolution, half-pixel centres, edge pixels repeated."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        w = np.zeros((n_out, n_in))
        for o in range(n_out):
            src = (o + 0.5) * n_in / n_out - 0.5
            i0 = int(np.floor(src))
            t = src - i0
            for k, d in zip(range(i0 - 1, i0 + 3), (1 + t, t, 1 - t, 2 - t)):
                d = abs(d)
                c = (a + 2) * d**3 - (a + 3) * d**2 + 1 if d <= 1 else a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
                w[o, min(max(k, 0), n_in - 1)] += c
        return w

    wh, ww = weights(img.shape[-2], out_h), weights(img.shape[-1], out_w)
    return wh @ img.astype(np.float64) @ ww.T  # (..., H, W) -> (..., out_h, out_w)


class Resize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bicubic_resize_240_to_224_exports_exactly(tmp_path) -> None:
    """The released models' L-branch resize alone, at its real size: torch == onnxruntime == Keys a=-0.75."""
    x = torch.rand(2, 3, 240, 240)
    path = tmp_path / "resize.onnx"
    with torch.no_grad():
        torch.onnx.export(Resize(), (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": {0: "b"}})  # fmt: skip
    (node,) = resize_nodes(path)
    assert node["mode"] == "cubic" and node["cubic_coeff_a"] == pytest.approx(-0.75)
    assert node["coordinate_transformation_mode"] == "half_pixel"
    ort_out = Runner(path, "onnx")(x)
    torch_out = Resize()(x).numpy()
    ref = keys_bicubic(x.numpy(), 224, 224)
    # fp32 vs fp64: PyTorch computes the source coordinates with a float32 scale (~1e-5 px off at the far edge)
    assert np.abs(torch_out - ref).max() < 1e-4
    assert np.abs(ort_out - ref).max() < 1e-4
    assert np.abs(ort_out - torch_out).max() < 1e-4


@pytest.mark.parametrize("variant", ["cls", "nocls"])
def test_onnx_parity_dynamic_batch_and_metadata(tmp_path, variant) -> None:
    model = tiny() if variant == "cls" else tiny(cls_token=False)
    path = export_onnx(model, tmp_path / "m.onnx")
    (node,) = resize_nodes(path)  # the 48 -> 32 px L-branch resize
    assert (node["mode"], node["coordinate_transformation_mode"]) == ("cubic", "half_pixel")
    rows = check_export(model, path, "onnx", photo_batch(model))
    assert [r.batch for r in rows] == [1, 3, 3]  # traced at 2: other batch sizes run
    assert all(r.max_abs_diff <= 1e-4 and r.top1_agree == r.batch for r in rows), rows
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["crossvit_label_names"]) == list("abcde")
    assert json.loads(meta["crossvit_data_config"])["input_size"] == [3, 48, 48]
    assert crossvit.CrossViTConfig.from_dict(json.loads(meta["crossvit_config"])) == model.cfg


def test_onnx_low_opset_and_bad_opset(tmp_path) -> None:
    model = tiny()
    path = export_onnx(model, tmp_path / "m11.onnx", opset=11)
    assert all(r.max_abs_diff <= 1e-4 for r in check_export(model, path, "onnx", None))
    with pytest.raises(ValueError, match="opset >= 11"):
        export_onnx(model, tmp_path / "m9.onnx", opset=9)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_parity(tmp_path) -> None:
    model = tiny()
    path = export_torchscript(model, tmp_path / "m.pt")
    rows = check_export(model, path, "torchscript", photo_batch(model))
    assert all(r.max_abs_diff <= 1e-5 for r in rows), rows
    extra = {"crossvit.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(json.loads(extra["crossvit.json"])["crossvit_label_names"]) == list("abcde")


def test_unsupported_format(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="supported formats: onnx, torchscript, release"):
        check_format("tflite")
    from pathlib import Path

    assert check_format(None, Path("x.onnx")) == "onnx" and check_format(None, Path("x.pt")) == "torchscript"
    rel = crossvit.save_pretrained(tiny(), tmp_path / "rel")
    assert cli(["export", "--checkpoint", str(rel), "--format", "coreml", "--out", str(tmp_path / "m.x")]) == 2
    err = capsys.readouterr().err
    assert "unsupported export format 'coreml'" in err and "onnx, torchscript" in err
    assert not (tmp_path / "m.x").exists()


def test_cli_export_prints_check(tmp_path, capsys) -> None:
    rel = crossvit.save_pretrained(tiny(), tmp_path / "rel")
    assert cli(["export", "--checkpoint", str(rel), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "mode=cubic cubic_coeff_a=-0.75 coordinate_transformation_mode=half_pixel" in out
    assert "photos (astronaut, chelsea, coffee)" in out and out.strip().endswith("PASS")
    assert out.count(" ok") == 3


def test_dynamo_exporter(tmp_path) -> None:
    pytest.importorskip("onnxscript")
    model = tiny()
    path = export_onnx(model, tmp_path / "d.onnx", exporter="dynamo")
    assert all(r.max_abs_diff <= 1e-4 for r in check_export(model, path, "onnx", None))


def test_release_fp16_halves_the_file_and_keeps_labels_and_record(tmp_path, capsys) -> None:
    from safetensors import safe_open

    model = tiny()
    record = {"training": {"top1": 12.5, "epochs": 3}}
    src = crossvit.save_pretrained(model, tmp_path / "rel", extra=record)
    out = tmp_path / "rel16"
    assert cli(["export", "--checkpoint", str(src), "--format", "release", "--dtype", "fp16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "release, fp16 weights" in printed and "tolerance 0.05" in printed and printed.strip().endswith("PASS")
    ratio = (out / "model.safetensors").stat().st_size / (src / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.6, ratio
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes, dtypes
    config = json.loads((out / "config.json").read_text())
    assert config["weights_dtype"] == "fp16" and config["training"] == record["training"]
    back = crossvit.from_pretrained(out)
    assert back.label_names == list("abcde")
    x = torch.randn(2, 3, *model.cfg.img_size)
    with torch.no_grad():
        ref, got = model(x), back(x)
    assert got.dtype == torch.float32
    assert 0 < (ref - got).abs().max() < 5e-2  # rounded weights: close, not bit-equal
    assert "stored in fp16" in (out / "README.md").read_text()
    assert "stored in" not in (src / "README.md").read_text()


def test_every_weights_dtype_has_a_release_tolerance() -> None:
    # the CLI checks --dtype against RELEASE_ATOL; save_pretrained against WEIGHT_DTYPES: the two must list the same
    assert RELEASE_ATOL.keys() == WEIGHT_DTYPES.keys()
    assert RELEASE_ATOL["fp32"] < RELEASE_ATOL["fp16"] < RELEASE_ATOL["bf16"]  # bf16 keeps 3 fewer mantissa bits


def test_release_export_bad_options(tmp_path, capsys) -> None:
    src = crossvit.save_pretrained(tiny(), tmp_path / "rel")
    before = (src / "model.safetensors").read_bytes()
    args = ["export", "--checkpoint", str(src), "--format", "release", "--out"]
    assert cli([*args, str(src), "--dtype", "fp16"]) == 2
    assert "is the source release itself" in capsys.readouterr().err
    assert (src / "model.safetensors").read_bytes() == before
    assert cli([*args, str(tmp_path / "x"), "--dtype", "int4"]) == 2
    assert "--dtype 'int4'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert cli(["export", "--checkpoint", str(src), "--out", str(tmp_path / "m.onnx"), "--dtype", "fp16"]) == 2
    assert "only --format release" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
