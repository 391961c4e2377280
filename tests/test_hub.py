"""Publish and reuse: save_pretrained / from_pretrained round trips, timm reading our files, hub ids (local only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image

import crossvit
from conftest import TINY_ARGS
from crossvit import CheckpointError

TINY = {**TINY_ARGS, "num_classes": 3}
LABELS = ["cat", "astronaut", "coffee"]


def tiny(**kw) -> crossvit.CrossViT:
    torch.manual_seed(0)
    return crossvit.CrossViT(crossvit.CrossViTConfig(**{**TINY, **kw})).eval()


def logits(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_round_trip_same_logits_and_labels(tmp_path) -> None:
    model = tiny()
    model.pretrained_cfg = {"crop_pct": 0.9, "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.25] * 3}
    d = crossvit.save_pretrained(model, tmp_path / "rel", label_names=LABELS)
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    back = crossvit.from_pretrained(d)
    x = torch.randn(2, 3, 48, 48)
    assert torch.equal(logits(back, x), logits(model, x))
    assert back.label_names == LABELS and back.cfg == model.cfg
    dc = crossvit.data_config(back)
    assert (dc["crop_pct"], dc["interpolation"], dc["mean"]) == (0.9, "bilinear", (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="label_names has 2 entries"):
        crossvit.save_pretrained(model, tmp_path / "bad", label_names=["a", "b"])


def test_new_classes_and_size(tmp_path) -> None:
    model = tiny()
    d = crossvit.save_pretrained(model, tmp_path / "rel", label_names=LABELS)
    five = crossvit.from_pretrained(d, num_classes=5)
    assert five.num_classes == 5 and five.label_names is None  # old names do not fit the new head
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(five.forward_head(five.forward_features(x), pre_logits=True),
                                   model.forward_head(model.forward_features(x), pre_logits=True))  # fmt: skip
    big = crossvit.from_pretrained(d, img_size=72)
    assert big.cfg.img_size == (72, 72) and big.pos_embed[0].shape[1] == 1 + 36
    assert crossvit.data_config(big)["input_size"] == (3, 72, 72) and big.label_names == LABELS
    assert logits(big, torch.randn(2, 3, 72, 72)).shape == (2, 3)


def test_timm_loads_our_directory_with_same_logits(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ours = crossvit.create_model("crossvit_9_240", num_classes=4).eval()
    d = crossvit.save_pretrained(ours, tmp_path / "rel", label_names=list("wxyz"))
    config = json.loads((d / "config.json").read_text())
    assert config["architecture"] == "crossvit_9_240" and config["num_classes"] == 4
    ref = timm.create_model(
        "crossvit_9_240", pretrained=True, num_classes=4,
        pretrained_cfg_overlay=dict(file=str(d / "model.safetensors"), num_classes=4),
    ).eval()  # fmt: skip
    pics = [Image.fromarray(skimage.data.astronaut()), Image.fromarray(skimage.data.chelsea())]
    x = torch.stack([crossvit.eval_transform(ours)(p) for p in pics])  # (2, 3, 240, 240)
    with torch.no_grad():
        diff = (ref(x) - ours(x)).abs().max().item()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize(
    "changes",
    [
        dict(fusion="none"),
        dict(fusion="all_attn"),
        dict(fusion="cls_token"),
        dict(fusion="pairwise"),
        dict(cls_token=False),
        dict(cross_depth=2, cross_reattend=True),
        dict(multi_conv=True, embed_dim=(32, 64), num_heads=(2, 2)),
        dict(global_pool="avg", num_encoders=1),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_ablation_configs_round_trip(tmp_path, changes) -> None:
    model = tiny(**changes)
    back = crossvit.from_pretrained(crossvit.save_pretrained(model, tmp_path / "rel"))
    assert back.cfg == model.cfg
    x = torch.randn(2, 3, 48, 48)
    assert torch.equal(logits(back, x), logits(model, x))


def test_registered_ablation_keeps_its_name(tmp_path) -> None:
    model = crossvit.create_model("crossvit_small_nocls_240", img_size=48, num_classes=2)
    d = crossvit.save_pretrained(model, tmp_path / "rel")
    config = json.loads((d / "config.json").read_text())
    assert config["architecture"] == "crossvit_small_nocls_240" and config["crossvit_config"]["cls_token"] is False
    back = crossvit.from_pretrained(d)
    assert back.cfg == model.cfg and back.global_pool == "avg"
    x = torch.randn(1, 3, 48, 48)
    assert torch.equal(logits(back, x), logits(model, x))


def test_hub_id_through_hf_hub_download(tmp_path, monkeypatch) -> None:
    """The hub code path, served from a local directory: no network."""
    import huggingface_hub

    model = tiny()
    d = crossvit.save_pretrained(model, tmp_path / "snapshot", label_names=LABELS)
    calls = []

    def fake_download(repo_id: str, filename: str, cache_dir=None, **kw) -> str:
        calls.append((repo_id, filename))
        return str(d / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    x = torch.randn(1, 3, 48, 48)
    for name in ("someone/crossvit-tiny", "hf-hub:someone/crossvit-tiny"):
        back = crossvit.from_pretrained(name)
        assert torch.equal(logits(back, x), logits(model, x)) and back.label_names == LABELS
    assert calls == [("someone/crossvit-tiny", "config.json"), ("someone/crossvit-tiny", "model.safetensors")] * 2


def test_bad_release_dirs(tmp_path) -> None:
    d = crossvit.save_pretrained(tiny(), tmp_path / "rel")
    assert "label_names" not in json.loads((d / "config.json").read_text())
    assert crossvit.from_pretrained(d).label_names is None  # no names: fine, indices are printed by tools
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        crossvit.from_pretrained(d)
    d2 = crossvit.save_pretrained(tiny(), tmp_path / "rel2")
    (d2 / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: missing"):
        crossvit.from_pretrained(d2)
    d3 = crossvit.save_pretrained(tiny(embed_dim=(36, 72), num_heads=(3, 3)), tmp_path / "rel3")
    cfg = json.loads((d3 / "config.json").read_text())
    cfg["crossvit_config"]["embed_dim"] = [24, 48]  # weights of another width than the config says
    (d3 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=str(Path("rel3") / "model.safetensors")):
        crossvit.from_pretrained(d3)


def test_missing_dir_and_unreachable_hub_id(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)

    def offline(*a, **kw):
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(FileNotFoundError, match="runs/typo: not a directory holding config.json"):
        crossvit.from_pretrained("runs/typo")  # ./runs exists: a local path, never sent to the hub
    with pytest.raises(FileNotFoundError, match=r"someone/model: no such local directory, and not fetched .*OSError"):
        crossvit.from_pretrained("someone/model")


def test_flipped_bit_in_release_weights_is_detected(tmp_path) -> None:
    """A release records its weights' sha256: one flipped bit inside tensor data is an error naming the file."""
    crossvit.save_pretrained(tiny(), tmp_path)
    assert len(json.loads((tmp_path / "config.json").read_text())["weights_sha256"]) == 64
    crossvit.from_pretrained(tmp_path)  # intact: loads
    w = tmp_path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes: safetensors itself cannot notice
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*sha256"):
        crossvit.from_pretrained(tmp_path)
