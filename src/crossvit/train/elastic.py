"""Runs that heal themselves under ``torchrun --max-restarts N`` (torch.distributed.elastic).

When a worker dies (SIGKILL, OOM), torchrun's agent stops the others and starts the whole group again with the
same command line and ``TORCHELASTIC_RESTART_COUNT`` raised by one. Every rank then resumes from the newest
verified checkpoint of the run directory (rank 0 picks it and broadcasts the choice). For the restarted command
to find that directory, a run without ``--experiment`` is named after the rendezvous id (``--rdzv-id``, or the one
``--standalone`` draws), which stays the same over restarts.
"""

from __future__ import annotations

import os
import time


def restart_count() -> int:
    """How many times torchrun's agent has restarted this worker group (0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def run_name(model: str) -> str:
    """Default run directory name: ``<model>-<rendezvous id>`` under an elastic agent, else ``<model>-<time>``."""
    model = model.replace("/", "-")  # timm/resnet18: one directory, not two
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return f"{model}-{run_id}"
    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def restart_note(resumed_from: str | None) -> str | None:
    """The log line of a restarted group (None on a first start)."""
    n = restart_count()
    if n == 0:
        return None
    limit = os.environ.get("TORCHELASTIC_MAX_RESTARTS", "?")
    where = f"resumed from {resumed_from}" if resumed_from else "no verified checkpoint yet: started from scratch"
    return f"torchrun restart {n} of at most {limit} (a worker died): {where}"
