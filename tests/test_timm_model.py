"""A timm architecture (``--model timm/NAME``) is trained, resumed, released, loaded and used as a teacher like ours."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

import crossvit
from crossvit.cli import main as cli_main
from crossvit.data.synthetic import make_image_folder
from crossvit.models.flops import count_macs, count_params
from crossvit.models.timm_model import TimmClassifier
from crossvit.runtime.source import load_model
from crossvit.train import TrainConfig, train
from crossvit.train.distill import DistillationLoss, teacher_input_size
from crossvit.train.model_setup import arch_config, build_model
from crossvit.train.validation import validate
from test_train import tiny

CNN = "timm/resnet10t"  # the smallest ResNet timm has: a CNN teacher in miniature


@pytest.fixture(scope="module")
def toy16(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("toy16"), classes=3, per_class=4, size=16, val_per_class=2)


def cnn(data, out, **kw) -> TrainConfig:
    return tiny(data, out, model=CNN, model_args=None, img_size=16, mixup=0.0, cutmix=0.0, **kw)


@pytest.fixture(scope="module")
def cnn_run(toy16, tmp_path_factory):
    return train(cnn(toy16, tmp_path_factory.mktemp("cnn"), epochs=2))


def test_timm_model_trains_and_its_release_loads_here_and_in_timm(cnn_run, toy16) -> None:
    assert cnn_run["complete"] and cnn_run["steps"] == 4  # 12 images / batch 6 x 2 epochs
    release = Path(cnn_run["release_dir"])
    config = json.loads((release / "config.json").read_text())
    assert config["architecture"] == "resnet10t" and config["timm_config"]["img_size"] == [16, 16]
    assert config["label_names"] == ["class_0", "class_1", "class_2"]
    trained = cnn_run["model"].eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = trained(x)
        mine = crossvit.from_pretrained(release).eval()
        assert isinstance(mine, TimmClassifier) and mine.label_names == config["label_names"]
        torch.testing.assert_close(mine(x), want)
        # timm reads the release as one of its own: same keys, same logits
        overlay = dict(file=str(release / "model.safetensors"), num_classes=3)
        theirs = timm.create_model("resnet10t", num_classes=3, pretrained=True, pretrained_cfg_overlay=overlay).eval()
        torch.testing.assert_close(theirs(x), want)
    assert set(load_file(str(release / "model.safetensors"))) == set(theirs.state_dict())


def test_timm_model_resumes_exactly(toy16, tmp_path, cnn_run) -> None:
    part = train(cnn(toy16, tmp_path, epochs=2, stop_epoch=1))
    assert not part["complete"] and part["steps"] == 2
    resumed = train(cnn(toy16, tmp_path, epochs=2, resume="auto"))
    assert resumed["complete"] and resumed["steps"] == 4
    assert resumed["weights_sha256"] == cnn_run["weights_sha256"]  # as if never stopped


def test_tools_take_the_timm_release_and_its_run_dir(cnn_run, toy16, capsys) -> None:
    release = cnn_run["release_dir"]
    img = sorted(Path(toy16, "val").rglob("*.png"))[0]
    assert cli_main(["predict", str(img), "--checkpoint", release, "--format", "json", "--topk", "2"]) == 0
    got = json.loads(capsys.readouterr().out)[0]["topk"]
    assert len(got) == 2 and got[0]["label"].startswith("class_")
    m = validate(release, str(Path(toy16, "val")), workers=0)
    assert m["images"] == 6 and "top1_branch_s" not in m
    best = load_model(Path(cnn_run["run_dir"]) / "best.pth")  # a training checkpoint rebuilds the timm model
    assert isinstance(best, TimmClassifier) and best.cfg.img_size == (16, 16)


def test_a_timm_teacher_distils_into_a_crossvit_student(cnn_run, toy16, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="crossvit"):
        res = train(tiny(toy16, tmp_path, teacher=cnn_run["release_dir"], distill="hard", distill_alpha=0.5))
    assert res["complete"] and res["steps"] == 2 and isinstance(res["model"], crossvit.CrossViT)
    assert f"distilling from {cnn_run['release_dir']} (hard, alpha 0.50" in caplog.text
    assert "distilling from" in (Path(res["run_dir"]) / "train.log").read_text()  # the run's own log says so too


def test_a_teacher_sees_the_batch_at_its_own_input_size(cnn_run) -> None:
    from torchvision.transforms.v2 import functional as TF

    teacher = crossvit.from_pretrained(cnn_run["release_dir"]).eval()
    assert teacher_input_size(teacher) == (16, 16) and teacher_input_size(torch.nn.Linear(2, 2)) is None
    seen = []
    teacher.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), teacher, "soft", 0.5, 1.0, teacher_input_size(teacher))
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    loss(x, torch.randn(2, 3), torch.tensor([0, 1]))  # a 24-px student batch
    want = TF.resize(x, [16, 16], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    torch.testing.assert_close(seen[0], want, rtol=1e-5, atol=1e-5)
    same = torch.randn(2, 3, 16, 16)
    loss(same, torch.randn(2, 3), torch.tensor([0, 1]))
    assert seen[1] is same  # at the teacher's size: no copy


def test_timm_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--model timm/no_such_net"):
        TrainConfig(model="timm/no_such_net", aa=None).validate()
    with pytest.raises(ValueError, match="--layer-decay: applies to CrossViT models"):
        TrainConfig(model=CNN, layer_decay=0.75, aa=None).validate()
    with pytest.raises(ValueError, match="--pretrained with --model timm/resnet10t"):
        arch_config(TrainConfig(model=CNN, pretrained=True, aa=None))


def test_timm_crossvit_with_our_dimensions_counts_like_ours() -> None:
    """timm's CrossVit class given crossvit_cifar_36's dimensions through --model-args: the same params and MACs
    (its fused attention is counted too), the peer a time-budget comparison trains."""
    args = dict(img_scale=[1.0, 32 / 36], patch_size=[3, 4], embed_dim=[64, 128], depth=[[1, 3, 0]] * 3,
                num_heads=[4, 4], mlp_ratio=[3.0, 3.0, 3.0])  # fmt: skip
    cfg = TrainConfig(model="timm/crossvit_tiny_240", img_size=36, aa=None, model_args=args)
    cfg.validate()
    theirs = build_model(cfg, 10)
    assert type(theirs.net).__name__ == "CrossVit" and theirs.cfg.img_size == (36, 36)
    ours = crossvit.create_model("crossvit_cifar_36")
    assert count_params(theirs) == count_params(ours)
    assert count_macs(theirs) == count_macs(ours)


def test_timm_release_exports_to_onnx_and_fp16(cnn_run, tmp_path, capsys) -> None:
    """A CNN teacher goes through `crossvit export` like a CrossViT: ONNX checked by onnxruntime, an fp16 release."""
    pytest.importorskip("onnxruntime")
    release = cnn_run["release_dir"]
    assert cli_main(["export", "--checkpoint", release, "--out", str(tmp_path / "cnn.onnx")]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("PASS") and "Resize node" not in out
    half = tmp_path / "cnn16"
    args = ["export", "--checkpoint", release, "--format", "release", "--dtype", "fp16", "--out", str(half)]
    assert cli_main(args) == 0
    assert capsys.readouterr().out.strip().endswith("PASS")
    back = load_model(str(half))
    assert isinstance(back, TimmClassifier) and back.label_names == ["class_0", "class_1", "class_2"]
