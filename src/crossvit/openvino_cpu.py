"""OpenVINO on the CPU, made safe to use inside a process that also trains (``pip install openvino``).

    from crossvit.openvino_cpu import compile_model
    request = compile_model(ov_model, {"INFERENCE_PRECISION_HINT": "bf16"}).create_infer_request()

Why this module exists: OpenVINO's CPU plugin gives the compiling thread its own alternate signal stack
(``sigaltstack``, an mmap'ed block) and puts the previous one back when the plugin is destroyed. With two
``ov.Core`` objects alive and freed in the other order, the thread is left pointing at an unmapped block. Python
runs its signal handlers with ``SA_ONSTACK``, so the next signal handled on that thread (a DataLoader worker
exiting sends SIGCHLD to the trainer) cannot be delivered and the kernel kills the whole process with SIGSEGV
(si_code SI_KERNEL, no traceback even with faulthandler). This is how the test suite crashed after a prediction
through OpenVINO followed by a training run with workers. Here: one Core per process, and every compile leaves the
thread's alternate signal stack exactly as it found it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator
from typing import Any


class _StackT(ctypes.Structure):  # struct stack_t from <signal.h> (Linux)
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def sigaltstack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack as (address, flags, size); None where it cannot be read."""
    libc = _libc()
    if libc is None:
        return None
    ss = _StackT()
    if libc.sigaltstack(None, ctypes.byref(ss)) != 0:
        return None
    return ss.ss_sp or 0, ss.ss_flags, ss.ss_size


@contextlib.contextmanager
def same_sigaltstack() -> Iterator[None]:
    """Restore the calling thread's alternate signal stack on the way out if the body replaced it."""
    libc = _libc()
    before = _StackT()
    if libc is None or libc.sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        after = _StackT()
        libc.sigaltstack(None, ctypes.byref(after))
        if (after.ss_sp, after.ss_flags, after.ss_size) != (before.ss_sp, before.ss_flags, before.ss_size):
            # SS_DISABLE (2) in flags means there was none: put back "none", which ignores the other fields
            libc.sigaltstack(ctypes.byref(before), None)


@functools.cache
def core() -> Any:
    """The process's one ``openvino.Core`` (created on first use)."""
    try:
        import openvino as ov
    except ImportError as e:
        raise ValueError("runtime 'openvino' needs the openvino package: pip install openvino") from e
    with same_sigaltstack():
        return ov.Core()


def compile_model(model: Any, config: dict[str, Any]) -> Any:
    """``core().compile_model(model, "CPU", config)``, leaving the thread's alternate signal stack as it was."""
    with same_sigaltstack():
        return core().compile_model(model, "CPU", config)
