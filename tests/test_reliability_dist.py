"""Distributed faults don't hang: two gloo ranks as real processes, one killed (SIGKILL) or frozen (SIGSTOP).

    pytest tests/test_reliability_dist.py -q

The ranks are launched the way torchrun launches them (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK in the
environment) but without torchrun's agent, so what ends the surviving rank is our process-group timeout and error
handling, not torchrun tearing the group down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import yaml

from badimages import TINY_TRAIN, make_image_folder, record
from crossvit.io import checkpoint as C
from crossvit.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd: list[str], world: int = 2) -> list[subprocess.Popen]:
    port = _free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world))
        env.update(RANK=str(r), LOCAL_RANK=str(r), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def wait_exit(p: subprocess.Popen, limit: float) -> tuple[int | None, float, str]:
    t0 = time.monotonic()
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, time.monotonic() - t0, out
    return p.returncode, time.monotonic() - t0, out


@pytest.mark.slow
def test_killed_rank_ends_the_other_with_an_error_and_nothing_is_lost(tmp_path):
    timeout = 15.0
    data = make_image_folder(tmp_path / "data", per_class=8)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_TRAIN, "epochs": 500, "dist_timeout": timeout}))
    run = tmp_path / "runs" / "d"
    cmd = [sys.executable, "-m", "crossvit", "train", str(data), "-c", str(recipe), "--device", "cpu"]
    procs = launch(cmd + ["--output", str(tmp_path / "runs"), "--experiment", "d"])
    try:
        t0 = time.monotonic()
        while not (run / "last.pth.sha256").exists():  # mid-run: the first epoch is checkpointed
            assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
            assert time.monotonic() - t0 < 120, "the 2-rank run did not get through an epoch"
            time.sleep(0.05)
        os.kill(procs[1].pid, signal.SIGKILL)
        rc, took, out = wait_exit(procs[0], timeout + 30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert rc is not None, f"rank 0 still running {took:.0f}s after rank 1 was killed:\n{out[-2000:]}"
    assert rc != 0
    assert "rank 0 of 2: lost contact with the other processes" in out and "--dist-timeout 15s" in out, out[-2000:]
    epoch = C.verify_checkpoint(run / "last.pth")  # nothing lost: the last checkpoint is whole ...
    assert epoch >= 1
    kw = {**TINY_TRAIN, "data": str(data), "output": str(tmp_path / "runs"), "experiment": "d"}
    r = train(TrainConfig(**{**kw, "epochs": epoch + 1, "resume": "auto"}))  # one process continues from it
    assert C.load_checkpoint(run / "last.pth")["epoch"] == epoch + 1
    assert r["steps"] > 0
    record(
        "distributed",
        "2 gloo ranks training, rank 1 SIGKILLed after epoch 1",
        1,
        1,
        kills=1,
        note=f"rank 0 exited (rc {rc}) {took:.1f} s later naming the cause; 1 process resumed from epoch {epoch}",
    )


STALL = textwrap.dedent(
    """
    import sys, time
    from crossvit.train import distributed as D

    info = D.setup("cpu", timeout_s=float(sys.argv[1]))
    print("joined", flush=True)
    try:
        while True:  # what a training step does between ranks: a small all-reduce
            D.all_reduce_sum([1.0], info.device)
            time.sleep(0.01)
    except RuntimeError as e:
        print("comm_error", D.is_comm_error(e), D.first_line(e), flush=True)
        sys.exit(3)
    finally:  # as train() does: without it, gloo's threads abort the exit (SIGABRT) in about half the runs
        D.cleanup()
    """
)


@pytest.mark.slow
def test_stalled_rank_times_out_within_the_bound(tmp_path):
    """SIGSTOP keeps rank 1's sockets open, so only the process-group timeout can end rank 0's wait."""
    timeout = 4.0
    script = tmp_path / "stall.py"
    script.write_text(STALL)
    procs = launch([sys.executable, str(script), str(timeout)])
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "joined"
        time.sleep(0.3)
        os.kill(procs[1].pid, signal.SIGSTOP)
        rc, took, out = wait_exit(procs[0], timeout + 30)
    finally:
        os.kill(procs[1].pid, signal.SIGKILL)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert rc == 3, (rc, took, out[-2000:])
    assert "comm_error True" in out, out[-2000:]
    assert took < timeout + 30
    record(
        "distributed",
        "2 gloo ranks, rank 1 frozen (SIGSTOP)",
        1,
        1,
        kills=1,
        note=f"rank 0 failed after {took:.1f} s with --dist-timeout {timeout:g} s",
    )


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the worker processes")
@pytest.mark.slow
def test_killed_dataloader_worker_stops_the_run_without_loss(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=16)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_TRAIN, "epochs": 500, "workers": 2}))
    run = tmp_path / "runs" / "w"
    cmd = [sys.executable, "-m", "crossvit", "train", str(data), "-c", str(recipe), "--device", "cpu"]
    p = subprocess.Popen(
        cmd + ["--output", str(tmp_path / "runs"), "--experiment", "w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    killed: list[int] = []
    try:
        t0 = time.monotonic()
        while not (run / "last.pth.sha256").exists():
            assert p.poll() is None, p.communicate()[0][-2000:]
            assert time.monotonic() - t0 < 120, "no epoch finished"
            time.sleep(0.05)
        t1 = time.monotonic()
        while p.poll() is None and time.monotonic() - t1 < 60:  # kill a live worker (again if the run went on)
            kids = [k for k in _children(p.pid) if k not in killed]  # (a killed worker stays a zombie child)
            if kids:
                os.kill(kids[0], signal.SIGKILL)
                killed.append(kids[0])
                time.sleep(1.0)
            time.sleep(0.02)
        rc, took, out = wait_exit(p, 5)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    assert killed and rc not in (None, 0), (killed, rc, out[-2000:])
    assert "DataLoader worker" in out and "exited unexpectedly" in out or "killed by signal" in out, out[-2000:]
    epoch = C.verify_checkpoint(run / "last.pth")
    assert C.load_checkpoint(run / "last.pth")["epoch"] == epoch >= 1
    record(
        "workers",
        "DataLoader worker SIGKILLed mid-run (2 workers)",
        len(killed),
        len(killed),
        kills=len(killed),
        note=f"run stopped with PyTorch's worker error; last.pth (epoch {epoch}) verifies and loads",
    )
