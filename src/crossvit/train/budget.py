"""``--time-budget``: turn a wall-clock budget into a step count, so that warm-up and decay end on time.

The budget counts everything the command does, from its start (data scan and caching, validation, checkpoints).
The run measures its own speed and plans twice:

1. after ``probe`` optimizer steps (timed from the end of a few warm-up steps, which pay one-off costs),
   total steps = steps so far + remaining time x measured steps/s, less a reserve for the final evaluation;
2. after every epoch, again, from that epoch's wall time *including* its validation and checkpoint, so a machine
   that slows down (or a costly validation) moves the end of the schedule instead of overrunning the budget.

The schedule is a function of (step, total steps), so re-planning only stretches or squeezes the part still ahead.
``clock`` is injectable so the arithmetic is testable without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("crossvit")


class TimeBudget:
    def __init__(
        self,
        seconds: float,
        start: float,
        used_before: float = 0.0,
        probe: int = 20,
        skip: int = 3,
        reserve_frac: float = 0.01,
        clock: Callable[[], float] = time.perf_counter,
        max_steps: int | None = None,
        final_eval_factor: float = 1.0,
    ) -> None:
        self.max_steps = max_steps  # --epochs x steps per epoch: the budget never plans past it
        self.seconds, self.start, self.used_before = seconds, start, used_before
        self.probe, self.skip, self.reserve_frac = probe, skip, reserve_frac
        self.clock = clock
        self._probe_t0: float | None = None
        self._probe_step0 = 0
        self.planned = False
        self.final_reserve = 0.0  # seconds the final evaluation + release take, learnt from the first validation
        self.final_eval_factor = final_eval_factor  # the last validation's cost over an epoch's (its TTA views)

    def used(self) -> float:
        return self.used_before + self.clock() - self.start

    def remaining(self) -> float:
        return self.seconds - self.used()

    def _total(self, step: int, sec_per_step: float, extra_reserve: float = 0.0) -> int:
        reserve = self.reserve_frac * self.seconds + self.final_reserve + extra_reserve
        total = step + max(0, int((self.remaining() - reserve) / max(sec_per_step, 1e-9)))
        return total if self.max_steps is None else min(total, self.max_steps)

    def on_step(self, step: int, scheduler) -> None:
        """Called after optimizer step ``step`` (1-based count of steps done); plans once from the probe window."""
        if self.planned:
            return
        if self._probe_t0 is None:
            if step >= self._probe_step0 + self.skip or self.skip == 0:
                self._probe_t0, self._probe_step0 = self.clock(), step
            return
        if step - self._probe_step0 >= self.probe:
            rate = (self.clock() - self._probe_t0) / (step - self._probe_step0)
            total = self._total(step, rate)
            scheduler.set_total(total)
            self.planned = True
            log.info(
                "time budget %.0fs: %.3fs/step measured over %d steps -> %d steps in all (%.0fs used, %.0fs left); "
                "warm-up and decay end on time",
                self.seconds,
                rate,
                step - self._probe_step0,
                total,
                self.used(),
                self.remaining(),
            )

    def on_epoch(self, step: int, epoch_steps: int, epoch_seconds: float, eval_seconds: float, scheduler) -> None:
        """Re-plan from the epoch just finished (its steps, its wall time with validation and checkpoint)."""
        if epoch_steps <= 0:
            return
        self.final_reserve = max(self.final_reserve, eval_seconds * self.final_eval_factor)
        if self._probe_t0 is not None and step - epoch_steps <= self._probe_step0 < step:
            # the epoch that began the run paid one-off costs (compilation, first allocations) in the steps before
            # the probe: plan from the time since the probe began, or the schedule would end far too early
            epoch_seconds, epoch_steps = self.clock() - self._probe_t0, step - self._probe_step0
        sec_per_step = epoch_seconds / epoch_steps  # validation and checkpoint cost spread over the epoch's steps
        old = scheduler.total
        total = max(step, self._total(step, sec_per_step))
        scheduler.set_total(total)
        self.planned = True
        if total != old:
            log.info(
                "time budget: %.3fs/step over the last epoch (validation included) -> %d steps in all (was %d); "
                "%.0fs left",
                sec_per_step,
                total,
                old,
                self.remaining(),
            )
