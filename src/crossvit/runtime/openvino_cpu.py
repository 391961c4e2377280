"""OpenVINO on the CPU, made safe to use inside a process that also trains (``pip install openvino``).

    from crossvit.runtime.openvino_cpu import compile_model
    request = compile_model(ov_model, {"INFERENCE_PRECISION_HINT": "bf16"}).create_infer_request()
    with routed_core():          # for a library that makes its own ov.Core() (NNCF's quantization)
        nncf.quantize(...)

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
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


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
        import openvino as ov  # optional dependency
    except ImportError as e:
        raise ValueError("runtime 'openvino' needs the openvino package: pip install openvino") from e
    with same_sigaltstack():
        return ov.Core()


def compile_model(model: Any, config: dict[str, Any]) -> Any:
    """``core().compile_model(model, "CPU", config)``, leaving the thread's alternate signal stack as it was."""
    with same_sigaltstack():
        return core().compile_model(model, "CPU", config)


@contextlib.contextmanager
def routed_core() -> Iterator[None]:
    """Inside the body, ``openvino.Core()`` returns the process's one Core.

    Libraries that build their own Core per call (NNCF does, for calibration statistics and CPU detection) would
    otherwise create and free Cores in an order of their choosing, which is the crash this module avoids.
    """
    import openvino as ov  # optional dependency

    shared = core()
    original = ov.Core
    ov.Core = lambda *a, **k: shared  # type: ignore[misc]
    try:
        with same_sigaltstack():
            yield
    finally:
        ov.Core = original  # type: ignore[misc]


def convert(model: Any) -> Any:
    """``openvino.convert_model`` of an fp32 CrossViT traced at batch 1 (each :class:`Network` reshapes it)."""
    import openvino as ov  # optional dependency

    example = torch.zeros(1, model.cfg.in_chans, *model.cfg.img_size)
    with torch.no_grad(), warnings.catch_warnings():
        # tracing notes that the shape checks are constants for this input size, which is what we want
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace, which OpenVINO calls
        return ov.convert_model(model, example_input=example)


class Network:
    """An OpenVINO network run on the CPU: fp32 (B, C, H, W) images in, fp32 logits out.

    One compiled network per batch size (static shapes are faster than a dynamic batch); the first call with a new
    batch size compiles it. ``model`` is the CrossViT it was made from (metadata, preprocessing).
    """

    model: Any
    cfg: Any
    precision: str
    _ov_model: Any
    _config: dict[str, Any]
    _compiled: dict[int, Any]

    def eval(self) -> Network:  # called like nn.Module.eval by evaluation loops; always in inference mode
        return self

    def __call__(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        if b not in self._compiled:
            m = self._ov_model.clone()
            m.reshape([b, *x.shape[1:]])
            self._compiled[b] = compile_model(m, self._config).create_infer_request()
        out = self._compiled[b].infer({0: x.detach().float().cpu().numpy()})
        return torch.from_numpy(next(iter(out.values())).copy())
