"""Training checkpoints you can trust: full state, atomic writes, a checksum sidecar, newest-good auto-resume.

``last.pth`` / ``best.pth`` hold tensors and plain Python values only, so they load with ``weights_only=True``.
Next to each, ``last.pth.sha256`` records ``<sha256> <size> <epoch>`` of the file and of the one it replaced (a
process killed between the two renames leaves a pair that still verifies); a truncated or altered file fails the
check with an error naming it.

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

from .weights import CheckpointError, file_sha256, safe_torch_load

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


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict (sorted keys): equal hashes mean bit-identical weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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


def _records(side: Path) -> list[tuple[str, int, int]]:
    """(sha256, size, epoch) lines of a sidecar: the current file first, then the one it replaced."""
    out = []
    for line in side.read_text().splitlines():
        if line.strip():
            digest, size, epoch = line.split()
            out.append((digest, int(size), int(epoch)))
    if not out:
        raise ValueError("empty")
    return out


def _current_record(path: Path, side: Path) -> tuple[str, int, int] | None:
    """The sidecar record that matches the file now at ``path`` (size, then sha256), or None."""
    if not (path.is_file() and side.is_file()):
        return None
    try:
        records = _records(side)
    except (ValueError, OSError):
        return None
    size = path.stat().st_size
    candidates = [r for r in records if r[1] == size]
    if not candidates:
        return None
    digest = file_sha256(path)
    return next((r for r in candidates if r[0] == digest), None)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically (temp file in the same dir, fsync, rename, fsync the dir) plus its checksum.

    The sidecar is renamed into place first and lists the new file *and* the one being replaced, so whenever the
    process dies, ``path`` matches one of its records. A failed write (e.g. a full disk) keeps the previous file and
    raises a CheckpointError that says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    side = path.with_name(path.name + ".sha256")
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed mid-save
        stale.unlink(missing_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    lines = [f"{hashlib.sha256(data).hexdigest()} {len(data)} {int(state.get('epoch', -1))}\n"]
    prev_epoch = None
    current = _current_record(path, side)
    if current is not None:
        # the record of the file really at ``path``: after a writer killed between the two renames below, the
        # sidecar's first record names a file that never arrived, so the first record is not necessarily it
        digest, size, prev_epoch = current
        lines.append(f"{digest} {size} {prev_epoch}\n")
    tmp = tmp_side = None
    try:
        tmp = _write_tmp(path.parent, path.name, data)
        tmp_side = _write_tmp(path.parent, path.name + ".sha256", "".join(lines).encode())
    except OSError as e:
        for t in (tmp, tmp_side):
            if t:
                Path(t).unlink(missing_ok=True)
        kept = f"the previous {path.name} (epoch {prev_epoch}) is kept" if prev_epoch is not None else "nothing kept"
        raise CheckpointError(f"{path}: not saved ({e.strerror or e}); {kept}") from e
    os.replace(tmp_side, side)
    os.replace(tmp, path)
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
        records = _records(side)
    except ValueError:
        raise CheckpointError(f"{side}: malformed checksum file") from None
    actual = path.stat().st_size
    if all(size != actual for _, size, _ in records):
        raise CheckpointError(
            f"{path}: {actual} bytes but {records[0][1]} were written; the file is truncated or altered"
        )
    digest_now = file_sha256(path)
    for digest, size, epoch in records:
        if digest == digest_now and size == actual:
            return epoch
    raise CheckpointError(f"{path}: sha256 does not match {side.name}; the file is corrupted or altered")


def load_checkpoint(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Load a training checkpoint (tensors and plain types only). ``verify`` checks the sidecar first."""
    path = Path(path)
    if verify and path.with_name(path.name + ".sha256").exists():
        verify_checkpoint(path)
    elif not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    state = safe_torch_load(path, "Only checkpoints written by crossvit (tensors and plain values) are loaded.")
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
