"""Training end to end on a tiny generated ImageFolder: precisions, bit-exact resume, fine-tuning, validation."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import crossvit
from conftest import TINY_TRAIN_ARGS
from crossvit.data.synthetic import make_image_folder
from crossvit.io.checkpoint import load_checkpoint
from crossvit.train import TrainConfig, finetune_config, train, validate
from crossvit.train.model_setup import build_model

TINY = TINY_TRAIN_ARGS


def tiny(data, out, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        model="crossvit_tiny_240",
        model_args=TINY,
        epochs=1,
        warmup_epochs=0,
        batch_size=6,
        lr=1e-3,
        aa=None,
        workers=0,
        amp="fp32",
        tensorboard=False,
        output=str(out),
        experiment="run",
        log_interval=1,
        crop_pct=1.0,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("toy"), classes=3, per_class=4, size=16, val_per_class=2)


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_two_steps(toy, tmp_path, amp, caplog):
    caplog.set_level(logging.INFO, logger="crossvit")
    r = train(tiny(toy, tmp_path, amp=amp))
    assert r["amp"] == amp and r["steps"] == 2 and r["complete"]  # 12 images / batch 6
    run = tmp_path / "run"
    for name in ("config.yaml", "summary.csv", "last.pth", "last.pth.sha256", "best.pth", "train.log"):
        assert (run / name).is_file(), name
    assert 0.0 <= r["top1"] <= 100.0 and r["top5"] == 100.0  # 3 classes: top-5 always hits
    rel = crossvit.from_pretrained(r["release_dir"])
    assert rel.label_names == ["class_0", "class_1", "class_2"]
    assert rel.cfg.img_size == (16, 16) and rel.num_classes == 3
    cfg_json = json.loads((run / "release" / "config.json").read_text())
    assert cfg_json["pretrained_cfg"]["crop_pct"] == 1.0
    for k, v in r["model"].state_dict().items():
        assert torch.equal(rel.state_dict()[k], v), k
    st = load_checkpoint(run / "last.pth")
    assert st["epoch"] == 1 and st["step"] == 2 and st["config"]["amp"] == amp
    # attention "auto": tiled explicit matmuls for bf16 training on CPU (runtime.fast.pick_attention), SDPA in fp32
    impls = {m.impl for m in r["model"].modules() if hasattr(m, "impl")}
    assert impls == {"tiled" if amp == "bf16" else "sdpa"}
    assert f"{amp}, {impls.pop()} attention" in caplog.text


def test_attention_flag_overrides_the_automatic_choice(toy, tmp_path):
    r = train(tiny(toy, tmp_path, amp="bf16", attention="sdpa"))
    assert {m.impl for m in r["model"].modules() if hasattr(m, "impl")} == {"sdpa"}


def test_resume_is_bit_exact(toy, tmp_path):
    kw = dict(epochs=2, warmup_epochs=1, drop_path=0.1, model_ema=True, model_ema_decay=0.9)
    straight = train(tiny(toy, tmp_path / "a", **kw))
    first = train(tiny(toy, tmp_path / "b", stop_epoch=1, **kw))
    assert not first["complete"] and first["release_dir"] is None
    resumed = train(tiny(toy, tmp_path / "b", **kw))  # same run dir: resumes from last.pth on its own
    assert resumed["complete"] and resumed["steps"] == straight["steps"] == 4
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea = load_checkpoint(tmp_path / "a/run/last.pth")
    eb = load_checkpoint(tmp_path / "b/run/last.pth")
    assert all(torch.equal(ea["model_ema"][k], eb["model_ema"][k]) for k in ea["model_ema"])
    # the second epoch did move the weights, so equality above is not trivial
    mid = first["model"].state_dict()
    assert not all(torch.equal(mid[k], b[k]) for k in a)


def test_finetune_new_classes_and_size(toy, tmp_path):
    src = train(tiny(toy, tmp_path / "src"))
    five = make_image_folder(tmp_path / "five", classes=5, per_class=2, size=24, val_per_class=1)
    cfg = finetune_config(
        src["release_dir"],
        str(five),
        img_size=24,
        epochs=1,
        warmup_epochs=0,
        batch_size=4,
        aa=None,
        workers=0,
        amp="fp32",
        tensorboard=False,
        output=str(tmp_path / "ft"),
        experiment="run",
        crop_pct=1.0,
    )
    assert cfg.opt == "sgd" and cfg.weight_decay == 1e-4 and cfg.resolved_lr(1) == pytest.approx(0.01 * 4 / 768)
    model = build_model(cfg, 5)
    assert model.num_classes == 5 and model.cfg.img_size == (24, 24)
    assert model.pos_embed[0].shape == (1, 1 + 6 * 6, 16)  # 24 px / patch 4, resized from 4x4
    src_sd = src["model"].state_dict()
    assert torch.equal(
        model.state_dict()["blocks.0.blocks.1.0.attn.qkv.weight"], src_sd["blocks.0.blocks.1.0.attn.qkv.weight"]
    )
    r = train(cfg)
    assert crossvit.from_pretrained(r["release_dir"]).label_names == [f"class_{i}" for i in range(5)]


def test_validate_matches_hand_computation(tmp_path):
    torch.manual_seed(3)
    model = crossvit.create_model(
        crossvit.CrossViTConfig(
            **{**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()}, "num_classes": 7}
        )
    ).eval()
    model.label_names = [f"c{i}" for i in range(7)]
    x = torch.randn(23, 3, 16, 16)
    y = torch.randint(0, 7, (23,))
    m = validate(model, TensorDataset(x, y), batch_size=5, out_dir=tmp_path)
    with torch.no_grad():
        feats = model.forward_features(x)
        lg = [model.head[i](feats[i][:, 0]) for i in range(2)]  # per-branch CLS -> head
    logits = (lg[0] + lg[1]) / 2
    pred = logits.argmax(1)
    top5 = logits.topk(5, 1).indices
    assert m["images"] == 23
    assert m["top1"] == pytest.approx(100 * (pred == y).float().mean().item())
    assert m["top5"] == pytest.approx(100 * sum(int(y[i] in top5[i]) for i in range(23)) / 23)
    assert m["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert m["top1_branch_s"] == pytest.approx(100 * (lg[0].argmax(1) == y).float().mean().item())
    assert m["top1_branch_l"] == pytest.approx(100 * (lg[1].argmax(1) == y).float().mean().item())
    for c in range(7):
        n = int((y == c).sum())
        want = None if n == 0 else 100 * int(((pred == c) & (y == c)).sum()) / n
        assert m["per_class"][f"c{c}"] == (pytest.approx(want) if want is not None else None)
        for d in range(7):
            assert m["confusion"][c][d] == int(((y == c) & (pred == d)).sum())
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["top1"] == pytest.approx(m["top1"])
    # the OpenVINO runtime (optional dependency) gives the same figures, without the per-branch ones
    if importlib.util.find_spec("openvino") is not None:
        ov = validate(model, TensorDataset(x, y), batch_size=5, runtime="openvino")
        assert ov["runtime"] == "openvino fp32" and "top1_branch_s" not in ov
        assert ov["top1"] == pytest.approx(m["top1"]) and ov["top5"] == pytest.approx(m["top5"])
        assert ov["loss"] == pytest.approx(m["loss"], rel=1e-4) and ov["confusion"] == m["confusion"]


def test_plot_and_cli_validate(toy, tmp_path, capsys):
    from crossvit.cli import main

    r = train(tiny(toy, tmp_path, epochs=2))
    assert main(["plot", r["run_dir"]]) == 0
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert main(["validate", r["run_dir"], str(toy), "--out-dir", str(tmp_path / "v"), "-j", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert out["images"] == 6 and set(out["per_class"]) == {"class_0", "class_1", "class_2"}
    assert out["top1"] == pytest.approx(r["top1"])
    v = ["validate", str(toy), "--checkpoint", r["run_dir"], "-j", "0", "--out-dir", str(tmp_path / "v2")]
    assert main([*v, "--tta", "flip"]) == 0
    assert "(flip TTA)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*v, "--tta", "ten-crop"])  # argparse names the option and its choices
    assert "--tta" in capsys.readouterr().err


def test_damaged_checkpoint_is_detected_and_skipped(tmp_path):
    from crossvit.io.checkpoint import find_resumable, save_checkpoint, verify_checkpoint
    from crossvit.io.weights import CheckpointError

    state = {"model": {"w": torch.arange(1000.0)}, "epoch": 2, "step": 8, "rng": {}}
    save_checkpoint(tmp_path / "best.pth", {**state, "epoch": 1})
    save_checkpoint(tmp_path / "last.pth", state)
    assert find_resumable(tmp_path) == tmp_path / "last.pth"  # the newest good one
    assert torch.equal(load_checkpoint(tmp_path / "last.pth")["model"]["w"], state["model"]["w"])
    data = (tmp_path / "last.pth").read_bytes()
    (tmp_path / "last.pth").write_bytes(data[:-100])  # truncated
    with pytest.raises(CheckpointError, match=r"last\.pth: .*truncated"):
        load_checkpoint(tmp_path / "last.pth")
    (tmp_path / "last.pth").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(CheckpointError, match=r"last\.pth: sha256"):
        verify_checkpoint(tmp_path / "last.pth")
    assert find_resumable(tmp_path) == tmp_path / "best.pth"  # falls back to the older good file
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_weight_decay_groups_and_precision_choice():
    from crossvit.train.optim import param_groups
    from crossvit.train.precision import resolve_amp

    model = crossvit.create_model(
        crossvit.CrossViTConfig(
            **{k: tuple(v) for k, v in TINY.items() if isinstance(v, list)},
            num_encoders=1,
            large_depth=1,
            num_classes=3,
        )
    )  # noqa: E501
    names = {id(p): n for n, p in model.named_parameters()}
    for decay_tokens, pos_decayed in ((True, True), (False, False)):
        no_decay, decay = param_groups(model, 0.05, decay_tokens)
        assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
        decayed = {names[id(p)] for p in decay["params"]}
        assert ("pos_embed.0" in decayed) is pos_decayed and ("cls_token.1" in decayed) is pos_decayed
        assert not any(n.endswith(".bias") or "norm" in n for n in decayed)
        assert "blocks.0.blocks.0.0.attn.qkv.weight" in decayed
    cpu = torch.device("cpu")
    assert resolve_amp("fp32", cpu) == "fp32" and resolve_amp("auto", cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError, match="--amp fp16"):
        resolve_amp("fp16", cpu)
