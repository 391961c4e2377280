"""A crash mid-save loses nothing; damaged checkpoints are detected; checkpoints cannot run code.

    pytest tests/test_reliability_checkpoint.py -q

The kill tests use a real child process and real SIGKILLs: a driver process (torch imported once) forks a writer
per round; the writer resumes from the newest good checkpoint and saves in a loop until the test kills it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import crossvit
from badimages import TINY_MODEL_ARGS, TINY_TRAIN, make_image_folder, record
from crossvit.io import checkpoint as C
from crossvit.io.weights import CheckpointError, read_state_dict

DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from crossvit.io import checkpoint as C

    torch.set_num_threads(1)
    run, mib = sys.argv[1], int(sys.argv[2])

    def writer(kill_at=None):
        p = C.find_resumable(run)
        epoch = int(C.load_checkpoint(p)["epoch"]) if p else 0
        w = torch.empty(mib * 262144)  # float32: mib MiB
        if kill_at:  # die by SIGKILL before / after the n-th call of module.name inside save_checkpoint
            when, mod, name, n = kill_at[0], sys.modules[kill_at[1]], kill_at[2], int(kill_at[3])
            real, calls = getattr(mod, name), [0]
            def hook(*a, **k):
                calls[0] += 1
                if calls[0] == n and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                out = real(*a, **k)
                if calls[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
                return out
            setattr(mod, name, hook)
        while True:
            epoch += 1
            w.fill_(epoch)
            C.save_checkpoint(f"{run}/last.pth", {"model": {"w": w}, "epoch": epoch, "step": 10 * epoch})
            if kill_at:
                os._exit(3)  # the hook did not fire

    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    writer(cmd[1:] or None)
                finally:
                    os._exit(4)
            print(pid, flush=True)
        elif cmd[0] == "reap":
            _, status = os.waitpid(int(cmd[1]), 0)
            print(status, flush=True)
    """
)


class Driver:
    def __init__(self, tmp: Path, mib: int) -> None:
        self.run = tmp / "run"
        self.run.mkdir()
        script = tmp / "driver.py"
        script.write_text(DRIVER)
        self.p = subprocess.Popen(
            [sys.executable, str(script), str(self.run), str(mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> int:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return int(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=30)


def wait_for(pred, limit: float = 60.0) -> None:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < limit, "the writer produced no checkpoint"
        time.sleep(0.01)


def check_last(run: Path, min_epoch: int) -> int:
    """The newest good checkpoint is last.pth, it loads, its tensor is whole, its epoch did not go back."""
    found = C.find_resumable(run)
    assert found == run / "last.pth", found
    st = C.load_checkpoint(found)
    e = int(st["epoch"])
    assert e >= min_epoch
    assert st["step"] == 10 * e and bool((st["model"]["w"] == e).all())
    return e


def temp_files(run: Path) -> list[Path]:
    return sorted(run.glob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_last(tmp_path):
    rng = random.Random(0)
    d = Driver(tmp_path, mib=4)
    try:
        pid = d.ask("fork")  # a first good checkpoint
        wait_for(lambda: (d.run / "last.pth.sha256").exists())
        os.kill(pid, signal.SIGKILL)
        d.ask(f"reap {pid}")
        epoch = check_last(d.run, 1)
        first, mid_write = epoch, 0
        rounds = 16
        for _ in range(rounds):
            pid = d.ask("fork")
            time.sleep(rng.uniform(0.02, 0.4))
            os.kill(pid, signal.SIGKILL)
            status = d.ask(f"reap {pid}")
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            mid_write += bool(temp_files(d.run))  # killed while a temp file was being written
            epoch = check_last(d.run, epoch)
        assert epoch > first  # the writers made progress between kills
    finally:
        d.close()
    record(
        "crash mid-save",
        "SIGKILL of a process saving 4 MiB checkpoints in a loop, random moments",
        rounds,
        rounds,
        kills=rounds,
        note=f"{mid_write} landed mid-write; epoch {first} -> {epoch}, never went back",
    )


KILL_POINTS = [  # the system calls of one save, in order
    ("after", "tempfile", "mkstemp", 1),  # empty data temp file exists
    ("before", "os", "fsync", 1),  # data temp written, not yet fsynced
    ("after", "tempfile", "mkstemp", 2),  # data temp done, sidecar temp empty
    ("before", "os", "fsync", 2),  # sidecar temp written
    ("after", "os", "replace", 1),  # first rename done
    ("after", "os", "replace", 2),  # second rename done
    ("before", "os", "fsync", 3),  # directory not yet fsynced
]


@pytest.mark.slow
def test_sigkill_at_every_step_of_a_save(tmp_path):
    """SIGKILL at each system call of save_checkpoint: last.pth is the old or the new epoch, never unusable."""
    d = Driver(tmp_path, mib=1)
    try:
        pid = d.ask("fork")
        wait_for(lambda: (d.run / "last.pth.sha256").exists())
        os.kill(pid, signal.SIGKILL)
        d.ask(f"reap {pid}")
        epoch = check_last(d.run, 1)
        for point in KILL_POINTS:
            pid = d.ask("fork " + " ".join(map(str, point)))
            status = d.ask(f"reap {pid}")
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (point, status)
            new = check_last(d.run, epoch)
            assert new in (epoch, epoch + 1), (point, epoch, new)
            epoch = new
    finally:
        d.close()
    record(
        "crash mid-save",
        "SIGKILL at each system call of one save",
        len(KILL_POINTS),
        len(KILL_POINTS),
        kills=len(KILL_POINTS),
        note="last.pth = old or new epoch each time",
    )


def _state(epoch: int, size: int = 1000) -> dict:
    return {"model": {"w": torch.full((size,), float(epoch))}, "epoch": epoch, "step": 10 * epoch}


def test_two_saves_killed_between_their_renames_in_a_row(tmp_path, monkeypatch):
    """A writer dies after installing the new sidecar but before the checkpoint, twice: the old file still verifies
    (the second save must vouch for the file really at ``last.pth``, not for the first record of the sidecar)."""
    path = tmp_path / "last.pth"
    C.save_checkpoint(path, _state(1))
    real_replace = os.replace

    def die_after_sidecar(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".sha256"):
            raise KeyboardInterrupt  # the process is gone before the checkpoint's own rename

    monkeypatch.setattr(os, "replace", die_after_sidecar)
    for epoch in (2, 3):
        with pytest.raises(KeyboardInterrupt):
            C.save_checkpoint(path, _state(epoch))
    monkeypatch.undo()
    assert C.verify_checkpoint(path) == 1 and C.find_resumable(tmp_path) == path
    C.save_checkpoint(path, _state(4))  # and the next complete save works as usual
    assert C.verify_checkpoint(path) == 4 and temp_files(tmp_path) == []


def test_stale_temp_files_are_removed_by_the_next_save(tmp_path):
    C.save_checkpoint(tmp_path / "last.pth", _state(1))
    (tmp_path / ".last.pth.abc123.tmp").write_bytes(b"half a checkpoint")
    C.save_checkpoint(tmp_path / "last.pth", _state(2))
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("fail", ["write", "fsync"])
def test_disk_full_keeps_previous_checkpoint_and_says_so(tmp_path, monkeypatch, fail):
    path = tmp_path / "last.pth"
    C.save_checkpoint(path, _state(1))
    before = path.read_bytes()

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "fsync":
        monkeypatch.setattr(os, "fsync", enospc)
    else:
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *a):
                self.f.close()

            def write(self, b):
                self.f.write(b[: len(b) // 3])
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, k):
                return getattr(self.f, k)

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(CheckpointError) as e:
        C.save_checkpoint(path, _state(2))
    msg = str(e.value)
    assert str(path) in msg and "No space left" in msg and "previous" in msg and "epoch 1" in msg, msg
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert C.load_checkpoint(path)["epoch"] == 1
    assert temp_files(tmp_path) == []
    record("crash mid-save", f"ENOSPC in {fail}()", 1, 1, note="previous checkpoint kept, error says so")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_named_and_resume_falls_back(tmp_path, damage):
    C.save_checkpoint(tmp_path / "best.pth", _state(3))
    C.save_checkpoint(tmp_path / "last.pth", _state(5))
    p = tmp_path / "last.pth"
    data = bytearray(p.read_bytes())
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    else:
        data[len(data) // 2] ^= 0x01  # one bit, same size
        p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(p)):
        C.load_checkpoint(p)
    assert C.find_resumable(tmp_path) == tmp_path / "best.pth"
    assert C.load_checkpoint(C.find_resumable(tmp_path))["epoch"] == 3
    record(
        "damaged checkpoint",
        "last.pth " + ("cut in half" if damage == "truncate" else "with one bit flipped"),
        1,
        1,
        note="named; find_resumable falls back to best.pth",
    )


def test_trainer_auto_resume_skips_a_damaged_last(tmp_path, caplog):
    from crossvit.train import TrainConfig, train

    caplog.set_level(logging.INFO, logger="crossvit")
    data = make_image_folder(tmp_path / "data", per_class=4)
    kw = dict(TINY_TRAIN, data=str(data), output=str(tmp_path / "runs"), experiment="r")
    train(TrainConfig(**{**kw, "epochs": 2}))
    run = tmp_path / "runs" / "r"
    best_epoch = C.load_checkpoint(run / "best.pth")["epoch"]
    (run / "last.pth").write_bytes((run / "last.pth").read_bytes()[:-100])  # truncated
    r = train(TrainConfig(**{**kw, "epochs": 3, "resume": "auto"}))
    assert f"resumed from {run / 'best.pth'} at epoch {best_epoch}" in caplog.text
    assert str(run / "last.pth") in caplog.text  # the warning names the damaged file
    assert r["steps"] == 2 * 3  # 8 images / batch 4, 3 epochs in all
    assert C.load_checkpoint(run / "last.pth")["epoch"] == 3
    with pytest.raises(CheckpointError, match="truncated"):
        (run / "last.pth").write_bytes((run / "last.pth").read_bytes()[:-1])
        train(TrainConfig(**{**kw, "epochs": 4, "resume": str(run / "last.pth")}))


# --- hostile pickles ------------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs exec(): it would create ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def evil_file(path: Path, marker: Path, sidecar: bool = False) -> Path:
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 1, "step": 1, "x": Payload(str(marker))}, path)
    if sidecar:  # looks like one of our checkpoints
        data = path.read_bytes()
        Path(str(path) + ".sha256").write_text(f"{hashlib.sha256(data).hexdigest()} {len(data)} 1\n")
    return path


def test_the_payload_is_live(tmp_path):
    """The crafted file really runs code when loaded without weights_only (so the refusals below mean something)."""
    marker = tmp_path / "proof"
    torch.load(evil_file(tmp_path / "e.pth", marker), weights_only=False)
    assert marker.read_text() == "pwned"
    assert pickle.loads(pickle.dumps(Payload(str(tmp_path / "p2")))) is None and (tmp_path / "p2").exists()


def _loaders(tmp_path: Path, marker: Path):
    from crossvit.runtime.inference import load_model
    from crossvit.train import TrainConfig, finetune_config, train

    plain = evil_file(tmp_path / "evil.pth", marker)
    (tmp_path / "run").mkdir()
    ours = evil_file(tmp_path / "run" / "last.pth", marker, sidecar=True)
    cfg = crossvit.CrossViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL_ARGS.items()})
    data = make_image_folder(tmp_path / "data", per_class=4)
    kw = dict(TINY_TRAIN, data=str(data), output=str(tmp_path / "runs"))
    # finetune_config(source, data, **options) takes data as its second argument
    return {
        "read_state_dict": lambda: read_state_dict(plain),
        "create_model(checkpoint=)": lambda: crossvit.create_model(cfg, checkpoint=plain),
        "load_checkpoint": lambda: C.load_checkpoint(ours),
        "train --resume": lambda: train(TrainConfig(**kw, experiment="a", resume=str(ours))),
        "train --initial-checkpoint": lambda: train(TrainConfig(**kw, experiment="b", initial_checkpoint=str(plain))),
        "finetune (weights file)": lambda: train(finetune_config(str(plain), **kw, experiment="c")),
        "finetune (our checkpoint)": lambda: train(finetune_config(str(ours), **kw, experiment="d")),
        "predict load_model": lambda: load_model(plain, "crossvit_tiny_240"),
    }


def test_every_loader_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "marker"
    loaders = _loaders(tmp_path, marker)
    for name, load in loaders.items():
        with pytest.raises(CheckpointError) as e:
            load()
        msg = str(e.value)
        assert "evil.pth" in msg or "last.pth" in msg, (name, msg)
        assert "refused" in msg and "run code" in msg, (name, msg)
        assert not marker.exists(), name
    record(
        "hostile checkpoint",
        "pickle with an exec() payload, every loader path",
        len(loaders),
        len(loaders),
        note=", ".join(loaders) + "; marker file never created",
    )


# --- damaged release directories (from_pretrained, predict) ----------------------------------------------------------


def _damage(d: Path, how: str) -> str:
    w, c = d / "model.safetensors", d / "config.json"
    data = w.read_bytes()
    if how == "truncated weights":
        w.write_bytes(data[: len(data) // 2])
    elif how == "empty weights":
        w.write_bytes(b"")
    elif how == "altered header":
        b = bytearray(data)
        b[20] ^= 0x7F
        w.write_bytes(bytes(b))
    elif how == "pickle named .safetensors":
        torch.save({"w": torch.zeros(1)}, w)
    elif how == "truncated config":
        c.write_text(c.read_text()[:100])
        return str(c)
    return str(w)


@pytest.mark.parametrize(
    "how", ["truncated weights", "empty weights", "altered header", "pickle named .safetensors", "truncated config"]
)
def test_damaged_release_dir_is_named_by_from_pretrained_and_predict(tmp_path, how, capsys):
    from badimages import good_png
    from crossvit.cli import main as cli

    cfg = crossvit.CrossViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL_ARGS.items()})
    d = tmp_path / "rel"
    crossvit.save_pretrained(crossvit.CrossViT(cfg.replace(num_classes=2)), d)
    bad = _damage(d, how)
    with pytest.raises(CheckpointError, match=bad):
        crossvit.from_pretrained(d)
    (tmp_path / "x.png").write_bytes(good_png())
    assert cli(["predict", str(tmp_path / "x.png"), "--checkpoint", str(d)]) == 2
    assert bad in capsys.readouterr().err
    record("damaged checkpoint", f"release dir: {how}", 1, 1, note="from_pretrained and predict name the file")
