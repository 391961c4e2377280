"""The CIFAR-10 time-budget recipes, the runs that measured them and the releases they left agree on one model.

The recipes name ``crossvit_cifar_conv3_32``; the first measured runs (experiments/cifar10-time) trained
``crossvit_cifar_conv_32`` with ``model_args`` before the name existed, and the releases record their own config.
If the registered name drifted from what was measured, the recipes' stated accuracy would not be theirs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import crossvit
from crossvit.models.registry import get_entry
from crossvit.train.model_setup import arch_config
from crossvit.train.options import load_yaml, resolve

ROOT = Path(__file__).parents[1]
NAME = "crossvit_cifar_conv3_32"
# the runs behind configs/cifar10_30min.yaml and configs/cifar10_3h.yaml (the 3-hour one at three budgets)
RUNS = ("s3stem256-30m-s0-zen5", "s3stem256-90m-s0-zen5", "s3stem256-115m-s0-zen5", "s3stem256-145m-s0-zen5")
RECIPES = ("cifar10_30min.yaml", "cifar10_3h.yaml")
RELEASES = ("cifar10-30min", "cifar10-3h")


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_builds_the_named_model(recipe: str) -> None:
    cfg = resolve(None, **load_yaml(ROOT / "configs" / recipe))
    assert cfg.model == NAME and arch_config(cfg) == get_entry(NAME).cfg


@pytest.mark.parametrize("run", RUNS)
def test_measured_run_trained_the_named_model(run: str) -> None:
    recorded = load_yaml(ROOT / "experiments" / "cifar10-time" / run / "config.yaml")
    cfg = resolve(None, model=recorded["model"], model_args=recorded.get("model_args", {}))
    assert arch_config(cfg) == get_entry(NAME).cfg


@pytest.mark.parametrize("release", RELEASES)
def test_release_is_the_named_model_and_fits(release: str) -> None:
    d = ROOT / "releases" / release
    assert sum(f.stat().st_size for f in d.iterdir()) < 20 * 2**20
    model = crossvit.from_pretrained(d)
    ref = crossvit.create_model(NAME)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert len(model.label_names) == 10 and "airplane" in model.label_names
    # 7.21 M parameters, 16 + 4 patch tokens (each branch adds its CLS token)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 7.21
    assert [p.shape[1] for p in model.pos_embed] == [17, 5]
