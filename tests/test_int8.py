"""int8: NNCF quantization of a tiny CrossViT, the int8 release, and every tool loading it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crossvit
from crossvit.cli import main as cli_main
from crossvit.runtime.fast import to_inference

pytestmark = pytest.mark.slow  # NNCF quantizes a model once for the module (~12 s), then every tool loads it

pytest.importorskip("nncf")
pytest.importorskip("openvino")

LABELS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


def write_images(root: Path, n: int) -> list[Path]:
    """Smooth random images (noise blurred by upsampling), so the quantizer sees image-like statistics."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((48, 48), Image.BICUBIC)
        d = root / LABELS[i % len(LABELS)]
        d.mkdir(parents=True, exist_ok=True)
        paths.append(d / f"{i}.png")
        img.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def int8_release(tmp_path_factory, request) -> tuple[Path, Path, Path]:
    from conftest import tiny_cfg as cfg_fixture

    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    model = crossvit.create_model(cfg_fixture.__wrapped__()).eval()
    fp32 = crossvit.save_pretrained(model, root / "fp32", label_names=LABELS)
    write_images(root / "calib", 28)
    out = root / "int8"
    assert cli_main(["quantize", "--checkpoint", str(fp32), "--calibration", str(root / "calib"), "--images", "24",
                     "--out", str(out)]) == 0  # fmt: skip
    return fp32, out, root / "calib"


def test_int8_release_layout_and_agreement(int8_release) -> None:
    fp32_dir, out, calib = int8_release
    config = json.loads((out / "config.json").read_text())
    assert config["int8"]["calibration_images"] == 24 and (out / config["int8"]["ir"]).is_file()
    assert not list(out.parent.glob(".int8.*.tmp"))  # the temporary folder was renamed into place
    model = crossvit.from_pretrained(out)
    q = to_inference(model, "int8", runtime="openvino")
    assert q.precision == "int8"
    ops = {op.get_type_name() for op in q.ov_model.get_ops()}
    assert "FakeQuantize" in ops  # NNCF inserted int8 quantize / dequantize pairs
    ref = crossvit.from_pretrained(fp32_dir).eval()
    x = torch.stack([crossvit.eval_transform(ref)(Image.open(p).convert("RGB")) for p in sorted(calib.rglob("*.png"))])
    with torch.no_grad():
        want = ref(x)
    got = q(x)
    # int8 rounding, not a different network. How large the error gets depends on the CPU's int8 kernels (AVX2-only
    # Zen 3: largest error 25 % of the largest logit, rms 0.36 of the logits' spread), so the bound is on the
    # error's spread and on the logits' direction, which a different network would not share
    rms = (got - want).pow(2).mean().sqrt().item()
    assert 0 < rms < 0.5 * want.std().item()  # > 0: it really is another (quantized) network, not the fp32 one
    centered = [t - t.mean(1, keepdim=True) for t in (got, want)]  # (B, C) logits up to a per-image shift
    assert torch.nn.functional.cosine_similarity(*(t.flatten() for t in centered), dim=0) > 0.9
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.9


def test_tools_load_the_int8_release(int8_release, capsys) -> None:
    fp32_dir, out, calib = int8_release
    img = sorted(calib.rglob("*.png"))[0]
    assert cli_main(["predict", str(img), "--checkpoint", str(out), "--format", "json", "--topk", "2"]) == 0
    got = json.loads(capsys.readouterr().out)[0]["topk"]
    model = crossvit.from_pretrained(out)
    want = crossvit.runtime.inference.predict(to_inference(model, "int8", runtime="openvino"), img, topk=2)[0]
    assert [t["label"] for t in got] == [lab for lab, _ in want.topk]
    assert cli_main(["validate", str(out), str(calib), "-j", "0", "--out-dir", str(out.parent / "val")]) == 0
    text = capsys.readouterr().out
    assert "int8 (OpenVINO, NNCF) top-1" in text and "fp32" in text
    metrics = json.loads((out.parent / "val" / "metrics.json").read_text())
    assert 0 <= metrics["int8"]["top1"] <= 100 and abs(metrics["int8"]["top1"] - metrics["top1"]) <= 100 / 28 * 3


def test_int8_serve_metadata(int8_release) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from crossvit.cli import build_parser
    from crossvit.serve.cli import build

    _, out, calib = int8_release
    app, _ = build(build_parser("serve").parse_args(["serve", "--checkpoint", str(out), "--max-batch", "4"]))
    with TestClient(app) as c:
        meta = c.get("/metadata").json()
        assert (meta["precision"], meta["runtime"]) == ("int8", "openvino")
        data = sorted(calib.rglob("*.png"))[0].read_bytes()
        answer = c.post("/predict?top_k=1", content=data).json()
    model = crossvit.from_pretrained(out)
    want = crossvit.runtime.inference.predict(
        to_inference(model, "int8", runtime="openvino"), Image.open(io.BytesIO(data))
    )
    assert answer[0]["label"] == want[0].label
    assert answer[0]["score"] == pytest.approx(want[0].topk[0][1], abs=1e-4)


def test_int8_errors(tmp_path: Path, tiny_cfg) -> None:
    model = crossvit.create_model(tiny_cfg)
    with pytest.raises(ValueError, match="runtime='openvino'"):
        to_inference(model, "int8")
    with pytest.raises(ValueError, match="no int8 network"):
        to_inference(model, "int8", runtime="openvino")
    with pytest.raises(FileNotFoundError, match="calibration folder"):
        to_inference(model, "int8", runtime="openvino", calibration=tmp_path / "missing")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    rel = crossvit.save_pretrained(model, tmp_path / "rel")
    assert cli_main(["quantize", "--checkpoint", str(rel), "--calibration", str(tmp_path), "--out",
                     str(tmp_path / "out")]) == 2  # fmt: skip
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"
