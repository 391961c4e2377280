"""Options: defaults < YAML recipe < flags; bad options and bad data fail before any work, naming the culprit."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from crossvit.cli import main
from crossvit.data.synthetic import make_image_folder
from crossvit.train.config import TrainConfig
from crossvit.train.options import add_train_arguments, load_yaml, resolve


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    return p.parse_args(argv)


def test_defaults_are_the_paper_recipe():
    c = TrainConfig()
    assert (c.opt, c.lr_base, c.lr_base_size, c.weight_decay, c.epochs, c.warmup_epochs) == (
        "adamw",
        4e-3,
        4096,
        0.05,
        300,
        30,
    )
    assert (c.aa, c.mixup, c.cutmix, c.smoothing, c.reprob, c.drop_path) == (
        "rand-m9-mstd0.5-inc1",
        0.8,
        1.0,
        0.1,
        0.25,
        0.1,
    )
    assert c.resolved_lr(1) == pytest.approx(4e-3 * 64 / 4096)  # linear scaling with the global batch
    assert c.resolved_lr(8) == pytest.approx(4e-3 * 512 / 4096)
    assert TrainConfig(lr=0.5).resolved_lr(8) == 0.5  # --lr is absolute
    assert TrainConfig(model="crossvit_18_dagger_240").resolved_aug_repeats() == 3
    assert TrainConfig(model="crossvit_15_240").resolved_aug_repeats() == 0


def test_flags_override_yaml_override_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"epochs": 7, "lr": 0.1, "mixup": 0.0, "model_args": {"embed_dim": [8, 16]}}))
    cfg = resolve(parse(["-c", str(recipe), "--lr", "0.2", "-b", "12", "--no-tensorboard", "--aa", "none"]))
    assert cfg.epochs == 7  # from YAML
    assert cfg.lr == 0.2 and cfg.batch_size == 12 and cfg.tensorboard is False  # flags win
    assert cfg.mixup == 0.0 and cfg.model_args == {"embed_dim": [8, 16]} and cfg.aa is None
    assert cfg.weight_decay == 0.05  # untouched default
    cfg.save(tmp_path / "saved.yaml")
    assert resolve(parse(["-c", str(tmp_path / "saved.yaml")])) == cfg  # the saved config repeats the run


def test_unknown_yaml_key_names_it_and_suggests(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3\nwarmup_epoch: 1\n")
    with pytest.raises(ValueError, match=r"warmup_epoch.*did you mean warmup_epochs"):
        load_yaml(recipe)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--epochs", "5", "--warmup-epochs", "10"], "--warmup-epochs"),
        (["--lr", "-1"], "--lr"),
        (["-b", "7"], "even batch size"),
        (["--model", "crossvit_tiny_24"], "did you mean crossvit_tiny_240"),
        (["--compile-mode", "max-autotune"], "add --compile"),
    ],
)
def test_bad_options_fail_before_work(tmp_path, capsys, argv, needle):
    out = tmp_path / "runs"
    assert main(["train", str(tmp_path), "--output", str(out), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize(
    ("text", "needle"),
    [("loader: bogus\n", "--loader: must be one of workers, memory, got 'bogus'"), ("remode: zero\n", "--remode")],
)
def test_a_recipe_value_outside_the_choices_names_the_option(tmp_path, capsys, text, needle):
    recipe, out = tmp_path / "r.yaml", tmp_path / "runs"
    recipe.write_text(text)
    assert main(["train", str(tmp_path), "-c", str(recipe), "--output", str(out)]) == 2
    assert needle in capsys.readouterr().err  # argparse checks choices of flags only; the YAML goes through validate
    assert not out.exists()


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--warmup-epoch", "3", "--print-config"])  # a prefix is no abbreviation
    assert e.value.code == 2 and "--warmup-epoch" in capsys.readouterr().err


def test_bad_data_fails_before_training(tmp_path, capsys):
    out = ["--output", str(tmp_path / "runs"), "--experiment", "x", "-j", "0", "--no-tensorboard"]
    assert main(["train", str(tmp_path / "missing"), *out]) == 2
    assert "missing: no such data directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), *out]) == 2
    assert "empty/train: missing" in capsys.readouterr().err
    root = make_image_folder(tmp_path / "d", classes=2, per_class=2, size=16)
    (root / "train" / "class_9").mkdir()
    assert main(["train", str(root), *out]) == 2
    assert "class_9: class folder holds no images" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "x" / "last.pth").exists()


def test_print_config_of_the_embedded_default(capsys):
    assert main(["train", "--print-config", "--epochs", "3"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"] is None and cfg["epochs"] == 3 and cfg["model_args"]["img_size"] == [32, 32]


def test_recipes_in_configs_load_and_validate():
    from pathlib import Path

    from crossvit.train.demo import DIGITS_RECIPE

    names = ("digits_32", "imagenet_paper", "imagenet_official", "transfer_cifar10")
    recipes = [Path(__file__).parents[1] / "configs" / f"{n}.yaml" for n in names]
    for path in recipes:
        text = path.read_text()
        assert "# command:" in text and "# expected:" in text and "# wall time:" in text, path
        resolve(parse(["-c", str(path)])).validate()
    digits = load_yaml(Path(__file__).parents[1] / "configs" / "digits_32.yaml")
    assert digits == {k: v for k, v in DIGITS_RECIPE.items() if k != "data"}  # the demo runs this file's recipe


def test_demo_sample_is_one_seeded_image_per_class() -> None:
    from crossvit.train.demo import one_per_class

    targets = [3, 0, 1, 0, 3, 2, 1, 1, 0, 2] * 5
    picks = one_per_class(targets, seed=0)
    assert [targets[i] for i in picks] == [0, 1, 2, 3]  # every class once, in class order
    assert picks == one_per_class(targets, seed=0)  # the seed fixes the sample
    draws = {tuple(one_per_class(targets, seed=s)) for s in range(8)}
    assert len(draws) > 1  # and another seed draws other images of the same classes


def test_every_recipe_in_configs_loads_and_validates():
    """The CIFAR time-budget recipes too (their headers state command and measured figures in prose)."""
    paths = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        cfg = resolve(parse(["-c", str(path)]))
        cfg.validate()
        text = path.read_text()
        assert "crossvit train" in text or "crossvit finetune" in text, f"{path}: its header should state the command"
