"""One resolver from what the user named to a model (crossvit.runtime.source), and the commands that take it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import crossvit
from conftest import TINY_ARGS
from crossvit.cli import main
from crossvit.io.checkpoint import save_checkpoint
from crossvit.models.registry import PretrainedCfg
from crossvit.runtime.source import load_model, resolve_source


@pytest.fixture
def tiny_model() -> crossvit.CrossViT:
    return crossvit.create_model(crossvit.CrossViTConfig(**TINY_ARGS, num_classes=10)).eval()


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_release_and_run_dir_resolve_to_the_release(tmp_path, tiny_model) -> None:
    rel = crossvit.save_pretrained(tiny_model, tmp_path / "run" / "release")
    for given in (rel, rel / "config.json", tmp_path / "run"):
        src = resolve_source(given)
        assert src.kind == "release" and Path(src.ref) == Path(rel)
    loaded = load_model(tmp_path / "run")
    _same(loaded, tiny_model)
    assert isinstance(loaded.pretrained_cfg, PretrainedCfg)  # always the dataclass, whoever built the model


def test_run_dir_without_release_falls_back_to_best_then_last(tmp_path, tiny_model) -> None:
    run = tmp_path / "run"
    conf = {"model": "crossvit_tiny_240", "num_classes": 10, "img_size": 48, "model_args": dict(TINY_ARGS)}
    conf["model_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in conf["model_args"].items()}
    del conf["model_args"]["img_size"]
    state = {"model": tiny_model.state_dict(), "config": conf, "label_names": [str(i) for i in range(10)]}
    save_checkpoint(run / "last.pth", state)
    src = resolve_source(run)
    assert src.kind == "checkpoint" and src.ref.endswith("last.pth") and src.model == "crossvit_tiny_240"
    save_checkpoint(run / "best.pth", state)
    assert resolve_source(run).ref.endswith("best.pth")
    loaded = load_model(run)
    _same(loaded, tiny_model)
    assert loaded.label_names == state["label_names"] and isinstance(loaded.pretrained_cfg, PretrainedCfg)


def test_weights_file_needs_a_name_and_names_resolve(tmp_path, tiny_model) -> None:
    torch.save(tiny_model.state_dict(), tmp_path / "w.pth")
    src = resolve_source(tmp_path / "w.pth")
    assert src.kind == "weights" and src.model is None
    with pytest.raises(ValueError, match=r"w\.pth: a weights file needs --model"):
        load_model(tmp_path / "w.pth")
    assert resolve_source("crossvit_15_224").ref == "crossvit_15_240"  # an alias: the released weights of its entry
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        resolve_source(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="neither a release"):
        resolve_source(tmp_path)  # an empty directory


def test_validate_takes_data_and_checkpoint(tmp_path, tiny_model, capsys) -> None:
    rel = crossvit.save_pretrained(tiny_model, tmp_path / "rel")
    out = ["--out-dir", str(tmp_path / "v"), "-j", "0", "--json", "-b", "256"]
    assert main(["validate", "digits", "--checkpoint", str(rel), *out]) == 0
    new = capsys.readouterr()
    assert "deprecated" not in new.err
    assert main(["validate", str(rel), "digits", *out]) == 0  # the older spelling, for one release
    old = capsys.readouterr()
    assert "deprecated" in old.err and "--checkpoint" in old.err
    assert json.loads(new.out)["top1"] == json.loads(old.out)["top1"]
