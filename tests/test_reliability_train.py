"""Numbers that go bad stop cleanly (or are skipped, with a limit); bad configs fail before work starts.

pytest tests/test_reliability_train.py -q
"""

from __future__ import annotations

import logging
import re

import pytest
import torch
import yaml
from torch import nn

from badimages import TINY_MODEL_ARGS, TINY_TRAIN, make_image_folder, record
from crossvit.cli import main as cli
from crossvit.io import checkpoint as C
from crossvit.train import TrainConfig, train
from crossvit.train import trainer as T
from crossvit.train.options import load_yaml


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), per_class=4)  # 8 train images: 2 steps of 4


def cfg(data, out, **kw) -> TrainConfig:
    # lr == min_lr and no warm-up: a constant schedule, so the lr in a message is known without the scheduler
    base = dict(TINY_TRAIN, data=str(data), output=str(out), experiment="run", min_lr=TINY_TRAIN["lr"])
    return TrainConfig(**{**base, **kw})


class NaNAt(nn.Module):
    """Cross-entropy, except that the calls listed in ``bad`` (1-based) return NaN (or inf)."""

    def __init__(self, bad: set[int], value: float = float("nan")) -> None:
        super().__init__()
        self.bad, self.value, self.calls = bad, value, 0

    def forward(self, out, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * self.value if self.calls in self.bad else loss


def test_nan_loss_stops_naming_step_and_lr_and_keeps_last_checkpoint(data, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "build_criterion", lambda c: NaNAt({3}))  # epoch 2, its first step: global step 3
    with pytest.raises(FloatingPointError) as e:
        train(cfg(data, tmp_path, epochs=3))
    msg = str(e.value)
    assert "loss is nan at epoch 2 step 1 (global step 3) with lr 0.001" in msg, msg
    assert "--skip-nonfinite" in msg
    run = tmp_path / "run"
    st = C.load_checkpoint(run / "last.pth")  # epoch 1 is intact and verified
    assert st["epoch"] == 1 and st["step"] == 2
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
    monkeypatch.setattr(T, "build_criterion", lambda c: nn.CrossEntropyLoss())
    r = train(cfg(data, tmp_path, epochs=3, resume="auto"))  # and the run continues from it
    assert r["steps"] == 6 and C.load_checkpoint(run / "last.pth")["epoch"] == 3
    record("numbers", "NaN loss at global step 3", 1, 1, note="stopped naming step and lr; epoch-1 checkpoint resumed")


def test_inf_loss_too(data, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "build_criterion", lambda c: NaNAt({1}, float("inf")))
    with pytest.raises(FloatingPointError, match=r"loss is inf at epoch 1 step 1 \(global step 1\) with lr 0.001"):
        train(cfg(data, tmp_path))
    assert not (tmp_path / "run" / "last.pth").exists()
    record("numbers", "inf loss at the first step", 1, 1, note="stopped naming step and lr")


def test_skip_nonfinite_skips_up_to_the_limit(data, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="crossvit")
    monkeypatch.setattr(T, "build_criterion", lambda c: NaNAt({2, 3}))
    r = train(cfg(data, tmp_path, epochs=2, skip_nonfinite=2, experiment="ok"))
    assert r["steps"] == 4  # skipped steps still count, so the schedule stays aligned
    # no NaN reached the weights: the bad steps made no update
    assert all(torch.isfinite(v).all() for v in r["model"].state_dict().values() if v.is_floating_point())
    skipped = [rec.getMessage() for rec in caplog.records if "step skipped" in rec.getMessage()]
    assert len(skipped) == 2 and "global step 3" in skipped[1] and "allows 0 more" in skipped[1], skipped
    monkeypatch.setattr(T, "build_criterion", lambda c: NaNAt({2, 3, 4}))  # one more than allowed, across epochs
    with pytest.raises(FloatingPointError, match=r"epoch 2 step 2 \(global step 4\)"):
        train(cfg(data, tmp_path, epochs=2, skip_nonfinite=2, experiment="over"))
    record("numbers", "--skip-nonfinite 2 with 2, then 3 NaN steps", 2, 2, note="2 skipped (weights finite); 3rd stops")


# --- bad configs ---------------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"model": "crossvit_smal_240"}, r"crossvit_smal_240.*crossvit_small_240"),  # unknown, with a close match
    ({"img_size": 250}, r"img_size.*250x250 is not divisible by .* patch size 8"),
    ({"batch_size": 5, "mixup": 0.8}, r"--batch-size: mixup/cutmix .* even batch size, got 5"),
    ({"lr": 0.0}, r"--lr: must be > 0, got 0.0"),
    ({"lr": -1e-3}, r"--lr: must be > 0"),
    ({"epochs": 5, "warmup_epochs": 10}, r"--warmup-epochs: must be in \[0, --epochs=5\], got 10"),
    ({"skip_nonfinite": -1}, r"--skip-nonfinite: must be >= 0"),
    ({"model_args": {"embed_dims": [16, 32]}}, r"model_args.*embed_dims"),
]


@pytest.mark.parametrize("options,pattern", BAD_OPTIONS, ids=[next(iter(o)) for o, _ in BAD_OPTIONS])
def test_bad_option_fails_before_any_work(data, tmp_path, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        train(cfg(data, tmp_path, **options))
    assert not (tmp_path / "run").exists()  # nothing was written: no run dir, no data read
    record("bad config", f"{options}", 1, 1, note="ValueError naming the option, no run dir")


def test_unknown_yaml_key_names_it_and_the_close_match(data, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"epochs": 2, "warmup_epoch": 1}))
    with pytest.raises(ValueError, match=r"r.yaml: unknown option\(s\) 'warmup_epoch' \(did you mean warmup_epochs"):
        load_yaml(recipe)
    rc = cli(["train", str(data), "-c", str(recipe), "--output", str(tmp_path), "--experiment", "y"])
    assert rc == 2
    assert re.search(r"crossvit train: error: .*r.yaml: unknown option\(s\) 'warmup_epoch'", capsys.readouterr().err)
    assert not (tmp_path / "y").exists()
    record("bad config", "YAML key warmup_epoch", 1, 1, note="names it and 'did you mean warmup_epochs'; exit 2")


def test_cli_bad_lr_exit_2_naming_the_option(data, tmp_path, capsys):
    rc = cli(["train", str(data), "--lr", "-0.1", "--output", str(tmp_path), "--experiment", "z"])
    assert rc == 2 and "crossvit train: error: --lr: must be > 0, got -0.1" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    record("bad config", "`crossvit train --lr -0.1`", 1, 1, note="exit 2, '--lr: must be > 0'")


def test_resume_from_another_architecture_names_the_option(data, tmp_path):
    train(cfg(data, tmp_path, experiment="a"))
    ckpt = tmp_path / "a" / "last.pth"
    before = ckpt.read_bytes()
    other = dict(TINY_MODEL_ARGS, embed_dim=[32, 64])
    with pytest.raises(ValueError, match=r"--resume .*last.pth: checkpoint of another architecture") as e:
        train(cfg(data, tmp_path, experiment="b", model_args=other, resume=str(ckpt)))
    assert "size mismatch" in str(e.value)
    assert ckpt.read_bytes() == before  # nothing lost
    assert not (tmp_path / "b" / "last.pth").exists()
    record("bad config", "--resume of another architecture", 1, 1, note="names --resume and both models")
