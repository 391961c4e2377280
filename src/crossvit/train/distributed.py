"""torch.distributed when launched by ``torchrun``; a plain single process otherwise.

torchrun --nproc_per_node=2 -m crossvit train DATA ...     # DDP: gloo on CPU, NCCL on CUDA
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.rendezvous import rendezvous

log = logging.getLogger("crossvit")


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine")
    return dev


def setup(device: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group when torchrun set WORLD_SIZE > 1; a finite timeout stops a dead rank hanging the rest."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        timeout = datetime.timedelta(seconds=timeout_s)
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if attempt is None:
            dist.init_process_group(backend, timeout=timeout)
        else:
            # torchrun's agent keeps one store over restarts; without a per-attempt prefix a restarted group reads
            # the dead group's gloo/NCCL addresses and fails to connect (or connects to nobody)
            store, rank, world = next(rendezvous("env://", timeout=timeout))
            store = dist.PrefixStore(f"crossvit/attempt_{attempt}", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
        log.debug("rank %d/%d joined (%s)", rank, world, backend)
    return DistInfo(rank, world, local, dev)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (identity with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_tensor(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def is_comm_error(e: BaseException) -> bool:
    """True for the errors a collective raises when a peer died, hung past the timeout or the store went away."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return any(k in text for k in ("gloo", "Gloo", "NCCL", "Connection reset", "Connection closed", "Timed out"))


def first_line(e: BaseException) -> str:
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return line[:300]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj, info: DistInfo) -> list:
    """``obj`` of every rank, in rank order (a one-element list in a single process)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world
    dist.all_gather_object(out, obj)
    return out
