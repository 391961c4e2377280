"""Self-healing runs: under ``torchrun --max-restarts 1`` a SIGKILLed worker is replaced and the run completes.

torchrun's elastic agent sees the dead worker, stops the other, starts both again; each rank resumes from the
newest verified checkpoint, so the run ends with every epoch done, rc 0 and the same weights on both ranks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import yaml

from conftest import TINY_TRAIN_ARGS
from crossvit.data.synthetic import make_image_folder
from crossvit.io.checkpoint import load_checkpoint, verify_checkpoint

pytestmark = [
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the worker processes"),
]

TINY = TINY_TRAIN_ARGS
EPOCHS = 8


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.mark.slow
def test_killed_worker_is_replaced_and_the_run_finishes(tmp_path):
    data = make_image_folder(tmp_path / "data", classes=3, per_class=16, size=16, val_per_class=2)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({"model": "crossvit_tiny_240", "model_args": TINY}))
    runs = tmp_path / "runs"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "--max-restarts=1", "--monitor-interval=0.2",
        "-m", "crossvit", "train", str(data), "-c", str(recipe), "--epochs", str(EPOCHS), "--warmup-epochs", "0",
        "-b", "4", "--aa", "none", "-j", "0", "--amp", "fp32", "--threads", "1", "--no-tensorboard",
        "--output", str(runs), "--dist-timeout", "60",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        t0 = time.monotonic()
        while not list(runs.glob("*/last.pth.sha256")):  # epoch 1 is checkpointed: epoch 2 is under way
            assert agent.poll() is None, agent.communicate()[0][-3000:]
            assert time.monotonic() - t0 < 120, "the 2-rank run did not get through an epoch"
            time.sleep(0.02)
        workers = _children(agent.pid)
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)
        out, _ = agent.communicate(timeout=240)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
    assert agent.returncode == 0, out[-3000:]
    (run,) = [p.parent for p in runs.glob("*/last.pth")]  # the restarted group found the same run dir
    log = (run / "train.log").read_text()
    assert "torchrun restart 1 of at most 1 (a worker died): resumed from" in log, log[-3000:]
    assert verify_checkpoint(run / "last.pth") == EPOCHS
    st = load_checkpoint(run / "last.pth")
    assert st["epoch"] == EPOCHS and st["world"] == 2
    assert st["step"] == EPOCHS * 6  # 48 images over 2 ranks, batch 4: 6 steps per epoch, none lost or repeated
    hashes = json.loads((run / "ranks.json").read_text())["weights_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
