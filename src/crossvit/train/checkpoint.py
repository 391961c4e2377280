"""Training checkpoints you can trust: full state, atomic writes, a checksum sidecar, newest-good auto-resume.

``last.pth`` / ``best.pth`` hold tensors and plain Python values only, so they load with ``weights_only=True``.
Next to each, ``last.pth.sha256`` records ``<sha256> <size> <epoch>``; a truncated or altered file fails the check
with an error naming it.

    save_checkpoint(run_dir / "last.pth", state)
    state = load_checkpoint(run_dir / "last.pth")       # CheckpointError if damaged
    path = find_resumable(run_dir)                     # newest good of last.pth / best.pth, or None
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..weights import CheckpointError

log = logging.getLogger("crossvit")

NAMES = ("last.pth", "best.pth")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors / plain values (weights_only-loadable)."""
    py = random.getstate()
    npst = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], torch.from_numpy(npst[1].astype(np.int64)), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_tmp(d: Path, name: str, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically (temp file in the same dir, fsync, rename, fsync the dir) plus its checksum."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    side = f"{hashlib.sha256(data).hexdigest()} {len(data)} {int(state.get('epoch', -1))}\n".encode()
    tmp = _write_tmp(path.parent, path.name, data)
    tmp_side = _write_tmp(path.parent, path.name + ".sha256", side)
    os.replace(tmp, path)
    os.replace(tmp_side, path.with_name(path.name + ".sha256"))
    _fsync_dir(path.parent)
    return path


def verify_checkpoint(path: str | Path) -> int:
    """Check ``path`` against its sidecar; returns the epoch recorded. CheckpointError (naming the file) if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        raise CheckpointError(f"{path}: no checksum file {side.name} next to it; cannot verify it")
    try:
        digest, size, epoch = side.read_text().split()
        size_i, epoch_i = int(size), int(epoch)
    except ValueError:
        raise CheckpointError(f"{side}: malformed checksum file") from None
    actual = path.stat().st_size
    if actual != size_i:
        raise CheckpointError(f"{path}: {actual} bytes but {size_i} were written; the file is truncated or altered")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != digest:
        raise CheckpointError(f"{path}: sha256 does not match {side.name}; the file is corrupted or altered")
    return epoch_i


def load_checkpoint(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Load a training checkpoint (tensors and plain types only). ``verify`` checks the sidecar first."""
    path = Path(path)
    if verify and path.with_name(path.name + ".sha256").exists():
        verify_checkpoint(path)
    elif not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is one clear message naming the file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a crossvit training checkpoint (no 'model' entry)")
    return state


def find_resumable(run_dir: str | Path) -> Path | None:
    """The good checkpoint with the highest epoch in ``run_dir`` (damaged ones are skipped with a warning)."""
    best: tuple[int, Path] | None = None
    for name in NAMES:
        p = Path(run_dir) / name
        if not p.exists():
            continue
        try:
            epoch = verify_checkpoint(p)
        except CheckpointError as e:
            log.warning("not resuming from %s", e)
            continue
        if best is None or epoch > best[0]:
            best = (epoch, p)
    return best[1] if best else None
