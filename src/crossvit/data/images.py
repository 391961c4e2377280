"""What a dataset does with an image it cannot read: skip it (reported once per run) or stop."""

from __future__ import annotations

import logging
import os

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock, duplicates possible
    fcntl = None  # type: ignore[assignment]
from pathlib import Path

from ..io.images import BadImageError

log = logging.getLogger("crossvit")


class BadImagePolicy:
    """What to do with an unreadable image: ``skip`` (warn once, append the name to ``log_file``) or ``error``."""

    def __init__(self, mode: str = "skip", log_file: str | Path | None = None) -> None:
        if mode not in ("skip", "error"):
            raise ValueError(f"--on-bad-image must be 'skip' or 'error', got {mode!r}")
        self.mode = mode
        self.log_file = Path(log_file) if log_file else None
        self._seen: set[str] = set()

    def handle(self, err: BadImageError, name: str) -> None:
        """Raise in ``error`` mode; otherwise warn and record ``name`` once per run (all processes, all epochs)."""
        if self.mode == "error":
            raise err
        if name in self._seen:
            return
        self._seen.add(name)
        if self.log_file is not None and not self._record(name, err):
            return  # another worker process, or an earlier epoch's workers, already reported it
        log.warning("skipping unreadable image %s", err)

    def _record(self, name: str, err: BadImageError) -> bool:
        """Append ``name`` to the list unless it is there; False if it was. An exclusive lock makes the check and
        the append one step for the DataLoader worker processes that share the file."""
        fd = os.open(self.log_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            if any(line.split(b"\t", 1)[0] == name.encode() for line in b"".join(chunks).splitlines()):
                return False
            os.write(fd, f"{name}\t{err}\n".encode())  # O_APPEND: at the end whatever the offset
            return True
        finally:
            os.close(fd)  # releases the lock
