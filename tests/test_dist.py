"""Two processes under torchrun (gloo on CPU): DDP training ends with bit-identical weights on both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import TINY_TRAIN_ARGS
from crossvit.data.synthetic import make_image_folder
from crossvit.io.checkpoint import load_checkpoint

TINY = TINY_TRAIN_ARGS


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    data = make_image_folder(tmp_path / "data", classes=3, per_class=8, size=16, val_per_class=3)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({"model": "crossvit_tiny_240", "model_args": TINY, "aug_repeats": 2}))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "crossvit", "train", str(data), "-c", str(recipe), "--epochs", "2", "--warmup-epochs", "0",
        "-b", "4", "--aa", "none", "-j", "0", "--amp", "fp32", "--threads", "1", "--no-tensorboard",
        "--output", str(tmp_path / "runs"), "--experiment", "ddp", "--dist-timeout", "120",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "runs" / "ddp"
    hashes = json.loads((run / "ranks.json").read_text())["weights_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    st = load_checkpoint(run / "last.pth")
    # 24 images, repeated-aug sampler: ceil(24 / 2) = 12 per rank, batch 4 -> 3 steps per epoch
    assert st["world"] == 2 and st["step"] == 6 and len(st["rng"]) == 2
    assert st["metrics"]["images"] == 9  # validation shards without padding: every image once
    assert not torch.equal(st["rng"][0]["torch"], st["rng"][1]["torch"])  # ranks augment differently
    summary = json.loads(p.stdout[p.stdout.index("{") :])
    assert summary["release_dir"].endswith("ddp/release")
