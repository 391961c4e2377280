"""Fine-tuning the way users do it: accumulation, layer decay, freezing / probes, multi-label, bad input."""

from __future__ import annotations

import copy
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import TINY_TRAIN_ARGS
from crossvit import create_model
from crossvit.cli import main as cli
from crossvit.data.synthetic import make_image_folder
from crossvit.train import TrainConfig, train
from crossvit.train.accumulate import forward_backward
from crossvit.train.distributed import DistInfo
from crossvit.train.engine import train_one_epoch
from crossvit.train.model_setup import build_model
from crossvit.train.multilabel import average_precision, bce_criterion, f1_scores
from crossvit.train.optim import WarmupCosine, build_optimizer
from crossvit.train.precision import grad_scaler
from crossvit.train.state import TrainState
from crossvit.train.trainer import seed_everything

TINY = {**TINY_TRAIN_ARGS, "num_encoders": 2}


def tiny(data, out, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        model="crossvit_tiny_240",
        model_args=TINY,
        epochs=1,
        warmup_epochs=0,
        batch_size=4,
        lr=1e-2,
        aa=None,
        workers=0,
        amp="fp32",
        tensorboard=False,
        output=str(out),
        experiment="run",
        log_interval=1000,
        crop_pct=1.0,
        mixup=0.0,
        cutmix=0.0,
        reprob=0.0,
        drop_path=0.0,
        save_release=False,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("toy"), classes=3, per_class=4, size=16, val_per_class=2)


# --- gradient accumulation -------------------------------------------------------------------------------------
def test_accumulated_gradients_equal_the_big_batch(tiny_cfg):
    model = create_model(tiny_cfg)  # no dropout / drop-path: the forward is a function of the batch alone
    x, y = torch.randn(8, 3, 48, 48), torch.randint(0, 7, (8,))
    ce, scaler = torch.nn.CrossEntropyLoss(), grad_scaler("fp32", torch.device("cpu"))
    big = copy.deepcopy(model)
    F.cross_entropy(big(x), y).backward()
    micro = [(x[i : i + 2], y[i : i + 2]) for i in range(0, 8, 2)]  # 4 micro-batches of 2
    loss, n = forward_backward(model, micro, ce, scaler, torch.device("cpu"), "fp32")
    assert n == 8
    assert math.isclose(loss, F.cross_entropy(big(x), y).item(), rel_tol=1e-5)
    for (name, p), q in zip(model.named_parameters(), big.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_accumulated_epoch_makes_the_update_of_one_big_step(tiny_cfg):
    x, y = torch.randn(8, 3, 48, 48), torch.randint(0, 7, (8,))
    ce, dev = torch.nn.CrossEntropyLoss(), torch.device("cpu")
    results = []
    for accum, loader in ((1, [(x, y)]), (4, [(x[i : i + 2], y[i : i + 2]) for i in range(0, 8, 2)])):
        torch.manual_seed(0)
        m = create_model(tiny_cfg)
        opt = torch.optim.SGD(m.parameters(), lr=0.5)  # linear in the gradient (Adam's first step is ~sign(g))
        sched = WarmupCosine(opt, 0.5, 1, 0, 0.5, 0.5)
        cfg = TrainConfig(epochs=1, grad_accum_steps=accum)
        state = TrainState(cfg, DistInfo(), "fp32", m, opt, sched, grad_scaler("fp32", dev), ce, loader, None, 1)
        res = train_one_epoch(state, 0)
        assert res.step == 1 and res.images == 8
        results.append(m.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], rtol=1e-4, atol=1e-5, msg=k)


def test_grad_accum_run_logs_the_global_batch_and_scales_lr(toy, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="crossvit")
    cfg = tiny(toy, tmp_path, grad_accum_steps=2, batch_size=2, lr=None, lr_base=4e-3, lr_base_size=4096)
    assert cfg.resolved_lr(1) == pytest.approx(4e-3 * 4 / 4096)
    r = train(cfg)
    assert r["steps"] == 3  # 12 images / (2 x 2) per optimizer step
    assert "global batch 4 (2 per micro-batch x 2 accumulation x 1 process(es))" in caplog.text


# --- layer decay -------------------------------------------------------------------------------------------------
def test_layer_decay_lr_per_parameter():
    cfg = TrainConfig(
        model="crossvit_tiny_240", model_args=TINY, layer_decay=0.5, weight_decay=0.05, wd_tokens="exclude"
    )
    model = build_model(cfg, 3)
    opt = build_optimizer(model, cfg, lr=1.0)
    WarmupCosine(opt, 1.0, 10, 0, 0.0, 0.0).step(0)  # lr 1.0 at step 0
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    K = 2

    def expected_depth(name: str) -> int:  # hand table: stem 0, encoder k -> k + 1, norms and heads K + 1
        if name.split(".")[0] in ("patch_embed", "pos_embed", "cls_token"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return K + 1

    seen = 0
    for name, p in model.named_parameters():
        g = by_param[id(p)]
        assert g["lr"] == pytest.approx(0.5 ** (K + 1 - expected_depth(name))), name
        no_decay = p.ndim <= 1 or name.startswith(("pos_embed", "cls_token"))
        assert g["weight_decay"] == (0.0 if no_decay else 0.05), name
        seen += 1
    assert seen == sum(1 for _ in model.parameters())
    # the fusion modules sit at the depth of their encoder
    fusion = dict(model.named_parameters())["blocks.1.fusion.0.attn.wq.weight"]
    assert by_param[id(fusion)]["lr"] == pytest.approx(0.5)


def test_layer_decay_groups_are_printed_with_verbose(caplog):
    caplog.set_level(logging.DEBUG, logger="crossvit")
    cfg = TrainConfig(model="crossvit_tiny_240", model_args=TINY, layer_decay=0.75)
    build_optimizer(build_model(cfg, 3), cfg, lr=1.0)
    assert "layer-decay group: depth 0 lr x 0.4219" in caplog.text  # 0.75^3
    assert "layer-decay group: depth 3 lr x 1.0000" in caplog.text


# --- freezing and probes -----------------------------------------------------------------------------------------
def _initial(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    seed_everything(cfg.seed)  # train() builds the model right after seeding the same way
    return {k: v.clone() for k, v in build_model(cfg, 3).state_dict().items()}


def test_linear_probe_leaves_every_frozen_weight_bit_identical(toy, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="crossvit")
    cfg = tiny(toy, tmp_path, linear_probe=True, epochs=2)
    before = _initial(cfg)
    after = train(cfg)["model"].state_dict()
    for k, v in before.items():
        if k.startswith("head."):
            assert not torch.equal(v, after[k]), k
        else:
            assert torch.equal(v, after[k]), k
    assert "trainable parameters:" in caplog.text and "% trainable" in caplog.text
    assert [ln for ln in caplog.text.splitlines() if ln.startswith("head ")]  # the table has a row per part


def test_freeze_branch0_and_encoders(toy, tmp_path):
    cfg = tiny(toy, tmp_path, freeze=["branch0"])
    before = _initial(cfg)
    after = train(cfg)["model"].state_dict()
    s_branch = [k for k in before if k.split(".")[:2] in (["patch_embed", "0"], ["pos_embed", "0"], ["norm", "0"])]
    s_branch += [k for k in before if ".blocks.0." in k]
    assert s_branch and all(torch.equal(before[k], after[k]) for k in s_branch)
    assert not torch.equal(before["patch_embed.1.proj.weight"], after["patch_embed.1.proj.weight"])
    cfg = tiny(toy, tmp_path, freeze=["encoders:1"], experiment="enc")
    before = _initial(cfg)
    after = train(cfg)["model"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("blocks.0.", "pos_embed")))
    assert not torch.equal(before["blocks.1.fusion.0.attn.wq.weight"], after["blocks.1.fusion.0.attn.wq.weight"])


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"grad_accum_steps": 0}, "--grad-accum-steps: must be >= 1, got 0"),
        ({"layer_decay": 1.5}, r"--layer-decay: must be in \(0, 1\]"),
        ({"freeze": ["patch_embeds"]}, "--freeze patch_embeds: no such part; parts are patch_embed, branch0"),
        ({"freeze": ["encoders:5"]}, r"--freeze encoders:5: K must be in \[1, 2\]"),
    ],
)
def test_bad_options_fail_before_any_work(tmp_path, kw, match):
    missing = tmp_path / "no-data-here"  # never read: the option check comes first
    with pytest.raises(ValueError, match=match):
        train(tiny(missing, tmp_path, **kw))
    assert not (tmp_path / "run").exists()


def test_single_class_folder_is_refused_naming_the_mistake(tmp_path):
    data = make_image_folder(tmp_path / "one", classes=1, per_class=4, size=16, val_per_class=0)
    with pytest.raises(ValueError, match=r"one class folder \(class_0/\).*loss is 0.*did you point at a class folder"):
        train(tiny(data, tmp_path))


# --- multi-label -------------------------------------------------------------------------------------------------
LABELS = ("cat", "dog", "sky")


def make_multilabel(root, n: int = 12, val: int = 6):
    """Images whose channel means say which labels they carry (R: cat, G: dog, B: sky), and train/val CSVs."""
    (root / "img").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for split, count in (("train", n), ("val", val)):
        rows = ["path,labels"]
        for i in range(count):
            on = [bool((i >> b) & 1) for b in range(3)] if i % 8 else [True, False, False]
            arr = (torch.rand(16, 16, 3, generator=g) * 60).to(torch.uint8)
            for c in range(3):
                if on[c]:
                    arr[..., c] += 180
            Image.fromarray(arr.numpy()).save(root / "img" / f"{split}{i}.png")
            rows.append(f"img/{split}{i}.png," + ";".join(lab for lab, o in zip(LABELS, on) if o))
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def test_bce_with_smoothing_against_hand_computation():
    z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    t = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    s = 0.2
    ts = t * (1 - s) + 0.5 * s  # multi-hot targets move towards 0.5
    p = 1 / (1 + torch.exp(-z))
    hand = -(ts * torch.log(p) + (1 - ts) * torch.log(1 - p)).mean()
    torch.testing.assert_close(bce_criterion(s, multi_label=True, mixup_on=False)(z, t), hand)
    # with mixup the targets arrive smoothed, so the loss leaves them as they are
    hand0 = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    torch.testing.assert_close(bce_criterion(s, multi_label=True, mixup_on=True)(z, t), hand0)


def test_map_and_f1_against_hand_computation():
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.7, 0.1], [0.6, 0.6]])
    truth = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    # class 0 ranked 1,0,1,0: AP = (1/1 + 2/3) / 2 = 5/6; class 1 ranked (0.7:1, 0.6:0, 0.2:0, 0.1:0): AP = 1
    ap = average_precision(scores, truth)
    torch.testing.assert_close(ap, torch.tensor([5 / 6, 1.0], dtype=torch.float64))
    # threshold 0.65: class 0 predicts rows 0,1,2 (tp 2, fp 1); class 1 predicts row 1 (tp 1)
    micro, macro = f1_scores(scores, truth, 0.65)
    assert micro == pytest.approx(100 * 2 * 3 / (2 * 3 + 1))  # tp 3, fp 1, fn 0
    assert macro == pytest.approx(100 * (4 / 5 + 1.0) / 2)


def test_multilabel_train_release_and_predict(tmp_path, capsys):
    data = make_multilabel(tmp_path / "ml")
    cfg = tiny(
        data, tmp_path, labels_csv="train.csv", mixup=0.8, cutmix=1.0, smoothing=0.1, epochs=1, save_release=True
    )
    r = train(cfg)
    assert r["classes"] == list(LABELS)
    assert 0 <= r["mAP"] <= 100 and "f1_micro" in r and r["top1"] is None
    rel = json.loads((tmp_path / "run" / "release" / "config.json").read_text())
    assert rel["multi_label"] is True and rel["threshold"] == 0.5 and rel["label_names"] == list(LABELS)
    rc = cli(
        ["predict", str(data / "img" / "val1.png"), "--checkpoint", str(tmp_path / "run" / "release"),
         "--threshold", "0.01", "--format", "json"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "multi-label model: labels with probability > 0.01" in captured.err
    out = json.loads(captured.out)[0]["topk"]
    assert {d["label"] for d in out} == set(LABELS)  # every sigmoid is above 0.01 for this barely trained model
    assert all(d["prob"] > 0.01 for d in out) and sum(d["prob"] for d in out) != pytest.approx(1.0)


def test_multilabel_csv_errors_name_the_file_and_line(tmp_path):
    data = make_multilabel(tmp_path / "ml", n=4, val=2)
    (data / "bad.csv").write_text("path,labels\nimg/train0.png,cat\nimg/nothere.png,dog\n")
    with pytest.raises(FileNotFoundError, match=r"bad.csv:3: image img/nothere.png not found"):
        train(tiny(data, tmp_path, labels_csv="bad.csv"))
    (data / "val.csv").write_text("img/val0.png,cat;horse\n")
    with pytest.raises(ValueError, match=r"val.csv:1: unknown label\(s\) 'horse'"):
        train(tiny(data, tmp_path, labels_csv="train.csv"))
    assert not (tmp_path / "run" / "last.pth").exists()
