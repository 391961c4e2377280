"""crossvit.runtime.inference.predict / load_model and ``crossvit predict``, on a tiny model and real photos."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torchvision import transforms as T

import crossvit
from conftest import TINY_ARGS
from crossvit.cli import main as cli
from crossvit.io.images import ImageReadError, expand_paths, load_image
from crossvit.models.preprocess import split_transform
from crossvit.runtime.inference import Prediction, load_model, predict

LABELS = ["cat", "astronaut", "coffee"]


def tiny(**kw) -> crossvit.CrossViT:
    cfg = crossvit.CrossViTConfig(**TINY_ARGS, num_classes=3).replace(**kw)
    torch.manual_seed(0)
    m = crossvit.CrossViT(cfg).eval()
    with torch.no_grad():  # a head with some spread so the top-k order is not a near tie
        for h in m.head:
            h.weight.normal_(0, 1.0)
    return m


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple:
    d = tmp_path_factory.mktemp("release")
    m = tiny()
    crossvit.save_pretrained(m, d / "labelled", label_names=LABELS)
    crossvit.save_pretrained(m, d / "plain")
    return m, d / "labelled", d / "plain"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    (d / "sub").mkdir()
    Image.fromarray(skimage.data.chelsea()).save(d / "chelsea.jpg")
    Image.fromarray(skimage.data.astronaut()).save(d / "sub" / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).convert("RGBA").save(d / "coffee.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # a JPEG header and nothing else
    (d / "notes.txt").write_text("not an image")
    return d


def reference_probs(model, pil: Image.Image) -> torch.Tensor:
    """Independent of predict(): the model's transform by hand, one image, softmax."""
    x = crossvit.eval_transform(model)(pil.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        return model(x).softmax(-1)[0]


def test_predict_api_matches_manual_forward(release, photos) -> None:
    model, rel, _ = release
    loaded = crossvit.from_pretrained(rel)
    cat = Image.open(photos / "chelsea.jpg")
    out = loaded.predict([cat, str(photos / "sub" / "astronaut.png"), skimage.data.coffee()], topk=2)
    assert [type(p) for p in out] == [Prediction] * 3
    assert all(p.ok and len(p.topk) == 2 and len(p.indices) == 2 for p in out)
    assert out[1].source.endswith("astronaut.png") and out[2].source == "<image 2>"
    pics = [cat, Image.open(photos / "sub" / "astronaut.png"), Image.fromarray(skimage.data.coffee())]
    for p, pil in zip(out, pics):
        ref = reference_probs(model, pil)
        torch.testing.assert_close(p.probs, ref, atol=1e-5, rtol=0)
        assert abs(float(p.probs.sum()) - 1) < 1e-5
        assert p.indices == ref.topk(2).indices.tolist()
        assert [lab for lab, _ in p.topk] == [LABELS[i] for i in p.indices]
        assert p.topk[0][1] >= p.topk[1][1]
    # one image in, a list of one out; topk is capped at the class count
    single = loaded.predict(cat, topk=10)
    assert len(single) == 1 and len(single[0].topk) == 3


def test_batching_does_not_change_results(release, photos) -> None:
    model, _, _ = release
    files = [photos / "chelsea.jpg", photos / "sub" / "astronaut.png", photos / "coffee.png"] * 2
    a = predict(model, files, batch_size=1)
    b = predict(model, files, batch_size=4)
    for x, y in zip(a, b):
        torch.testing.assert_close(x.probs, y.probs, atol=1e-5, rtol=0)


def test_corrupt_image_among_good_ones(release, photos) -> None:
    model, _, _ = release
    files = [photos / "chelsea.jpg", photos / "broken.jpg", photos / "missing.jpg", photos / "coffee.png"]
    out = predict(model, files, topk=3, batch_size=2)
    assert [p.ok for p in out] == [True, False, False, True]
    assert "broken.jpg" in out[1].error and "missing.jpg" in out[2].error and "no such file" in out[2].error
    assert out[1].topk == [] and out[1].probs is None and out[1].label is None
    ref = reference_probs(model, Image.open(photos / "coffee.png"))
    torch.testing.assert_close(out[3].probs, ref, atol=1e-5, rtol=0)


def test_load_image_exif_orientation_and_modes(tmp_path) -> None:
    rgb = skimage.data.astronaut()[:, :300]  # (512, 300, 3): not square, so a rotation shows
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "rot.jpg")
    assert img.mode == "RGB" and img.size == (512, 300)  # (W, H) after turning upright
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(tmp_path / "g16.png")
    assert load_image(tmp_path / "g16.png").mode == "RGB"
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent -> white background
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def test_expand_paths(photos) -> None:
    found = expand_paths([photos])
    assert [p.name for p in found] == ["broken.jpg", "chelsea.jpg", "coffee.png", "astronaut.png"]
    assert [p.name for p in expand_paths([str(photos / "**" / "*.png")])] == ["coffee.png", "astronaut.png"]
    # duplicates dropped, explicit files kept whatever the suffix, unmatched inputs kept for reporting
    got = expand_paths([photos / "chelsea.jpg", photos / "chelsea.jpg", photos / "notes.txt", photos / "nope*.jpg"])
    assert [p.name for p in got] == ["chelsea.jpg", "notes.txt", "nope*.jpg"]


def test_cli_table_json_csv(release, photos, capsys, tmp_path) -> None:
    _, rel, _ = release
    assert cli(["predict", str(photos), "--checkpoint", str(rel), "--topk", "2"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 4 and "error:" in lines[0] and "broken.jpg" in lines[0]
    assert all(any(lab in ln for lab in LABELS) for ln in lines[1:])
    assert "3 of 4 images predicted, 1 unreadable" in err

    assert cli(["predict", str(photos), "--checkpoint", str(rel), "--format", "json", "--output",
                str(tmp_path / "p.json")]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["error"] is None for r in rows] == [False, True, True, True]
    for r in rows[1:]:
        assert len(r["topk"]) == 3 and {t["label"] for t in r["topk"]} == set(LABELS)
        assert abs(sum(t["prob"] for t in r["topk"]) - 1) < 1e-5  # all 3 classes: probabilities sum to 1
    capsys.readouterr()

    assert cli(["predict", str(photos / "chelsea.jpg"), str(photos / "broken.jpg"), "--checkpoint", str(rel),
                "--format", "csv", "--topk", "1"]) == 0  # fmt: skip
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(table[0]) == ["image", "label_1", "prob_1", "error"]
    assert table[0]["label_1"] in LABELS and table[0]["error"] == ""
    assert table[1]["label_1"] == "" and "broken.jpg" in table[1]["error"]


def test_cli_no_label_names_prints_indices(release, photos, capsys) -> None:
    _, _, plain = release
    assert crossvit.from_pretrained(plain).label_names is None
    assert cli(["predict", str(photos / "chelsea.jpg"), str(photos / "coffee.png"), "--checkpoint", str(plain)]) == 0
    out, err = capsys.readouterr()
    assert err.count("no label names") == 1
    for line in out.strip().splitlines():
        labels = line.split()[1::2]
        assert sorted(labels) == ["0", "1", "2"]


def test_cli_exit_status_when_nothing_readable(release, photos, capsys) -> None:
    _, rel, _ = release
    assert cli(["predict", str(photos / "broken.jpg"), str(photos / "notes.txt"), "--checkpoint", str(rel)]) == 1
    out, err = capsys.readouterr()
    assert "broken.jpg" in out and "notes.txt" in out and "0 of 2 images predicted" in err
    assert cli(["predict", str(photos / "chelsea.jpg"), "--checkpoint", str(rel), "--format", "xml"]) == 2
    assert "table, json, csv" in capsys.readouterr().err


def test_weights_file_with_model_name(tmp_path, photos) -> None:
    """A bare weights file of a registered architecture: classes and resolution are read off the tensors."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    m = crossvit.create_model("crossvit_tiny_240", num_classes=4, img_size=48).eval()
    save_file(crossvit.to_timm_state_dict(m.state_dict()), tmp_path / "w.safetensors")
    loaded = load_model(tmp_path / "w.safetensors", "crossvit_tiny_240")
    assert loaded.num_classes == 4 and loaded.cfg.img_size == (48, 48) and loaded.label_names is None
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x))
    with pytest.raises(ValueError, match=r"w\.safetensors: a weights file needs --model"):
        load_model(tmp_path / "w.safetensors")


def test_checkpoint_of_another_architecture(tmp_path, capsys, photos) -> None:
    from safetensors.torch import save_file

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    net(torch.zeros(1, 3, 8, 8))
    save_file(net.state_dict(), tmp_path / "resnetish.safetensors")
    code = cli(["predict", str(photos / "chelsea.jpg"), "--checkpoint", str(tmp_path / "resnetish.safetensors"),
                "--model", "crossvit_9_240"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "resnetish.safetensors" in err and "not CrossViT weights" in err
    # a release dir whose config names another architecture
    rel = tmp_path / "other"
    rel.mkdir()
    (rel / "config.json").write_text(json.dumps({"architecture": "resnet50", "num_classes": 10}))
    save_file(net.state_dict(), rel / "model.safetensors")
    assert cli(["predict", str(photos / "chelsea.jpg"), "--checkpoint", str(rel)]) == 2
    err = capsys.readouterr().err  # timm's resnet50 is a model here (a timm release), but these are not its weights
    assert "other/model.safetensors" in err and "not weights of timm/resnet50" in err
    (rel / "config.json").write_text(json.dumps({"architecture": "my_resnet_50", "num_classes": 10}))
    assert cli(["predict", str(photos / "chelsea.jpg"), "--checkpoint", str(rel)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "my_resnet_50" in err and "neither a CrossViT nor a timm model" in err


def _probs_by_label(rows: list[dict]) -> list[dict[str, float]]:
    return [{t["label"]: t["prob"] for t in r["topk"]} for r in rows if r["error"] is None]


@pytest.mark.parametrize("runtime", ["torch", pytest.param("openvino", marks=pytest.mark.slow)])
def test_fast_paths_answer_like_the_plain_model(release, photos, capsys, runtime) -> None:
    if runtime == "openvino":
        pytest.importorskip("openvino")
    model, rel, _ = release
    files = [photos / "chelsea.jpg", photos / "broken.jpg", photos / "coffee.png"]
    ref = predict(model, files)
    # fp32 fast form through the Python API: same answers, the broken file still reported on its own
    fast = crossvit.from_pretrained(rel).to_inference("fp32", runtime=runtime)
    for a, b in zip(predict(fast, files), ref):
        assert a.ok == b.ok and a.error == b.error
        if a.ok:
            torch.testing.assert_close(a.probs, b.probs, atol=1e-4, rtol=0)
            assert a.indices == b.indices and a.topk[0][0] == LABELS[b.indices[0]]
    # bf16 through the CLI: probabilities within bf16's reach of fp32, labels from the release's config
    argv = ["predict", *map(str, files), "--checkpoint", str(rel), "--format", "json", "--precision", "bf16"]
    assert cli([*argv, "--runtime", runtime]) == 0  # 2 of 3 readable
    got = _probs_by_label(json.loads(capsys.readouterr().out))
    want = [{LABELS[i]: float(p.probs[i]) for i in range(3)} for p in ref if p.ok]
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert set(g) == set(LABELS) and max(abs(g[k] - w[k]) for k in LABELS) < 0.03


@pytest.mark.parametrize("crop_pct", [1.0, 0.875])
def test_split_transform_gives_the_per_image_transform_bit_for_bit(crop_pct: float) -> None:
    """predict and serve normalize a whole batch at once; the numbers must be those of timm's per-image transform."""
    tf = crossvit.eval_transform(tiny(), crop_pct=crop_pct)
    split = split_transform(tf)
    assert split is not None
    rng = np.random.default_rng(3)
    imgs = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(32, 32), (41, 77), (9, 5)]]
    want = torch.stack([tf(im) for im in imgs])  # (3, C, H, W)
    got = split.batch([split.per_image(im) for im in imgs])
    assert got.dtype == want.dtype and torch.equal(got, want)
    # a transform with a step that is not a PIL resize or crop is left whole (callers run it per image)
    assert split_transform(T.Compose([T.RandomHorizontalFlip(), *tf.transforms[-2:]])) is None
    assert split_transform(T.Compose(tf.transforms[:-1])) is None
