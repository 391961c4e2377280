"""Dynamic batching: images from concurrent requests are stacked into one forward pass, run on a worker thread.

The event loop only queues work and wakes futures; the model runs on dedicated threads and the loop stays free to
accept and decode other requests meanwhile. With one worker (the default) forward passes never overlap. With
``workers`` > 1 up to that many batches run at once, each on its own thread: on a small CPU, one single-threaded
forward pass per core keeps every core busy while the loop parses the next requests, where one two-threaded pass
leaves a core idle between batches. Work that switches the model's attention-map recording (``run_exclusive``)
waits until no batch is running, and none starts until it is done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0
    busy_s: float = 0.0  # summed over workers: forward passes (collate included), not waits for a batch to fill

    def to_dict(self) -> dict[str, float]:
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest,
                "model_busy_s": round(self.busy_s, 3)}  # fmt: skip


def bucket_sizes(max_batch: int) -> list[int]:
    """Batch sizes a static-shape runtime is compiled for: powers of two below ``max_batch``, then ``max_batch``."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch]


class Batcher:
    """Collects (C, H, W) images for up to ``max_wait_ms`` or ``max_batch`` images, runs ``fn`` on the stack.

    ``fn`` maps (B, C, H, W) fp32 images to (B, classes) logits; :meth:`submit` returns one image's probabilities.
    Submitted items are (C, H, W) tensors, or whatever ``collate`` turns into the batch (e.g. uint8 arrays that
    :class:`crossvit.models.preprocess.SplitTransform` normalizes once per batch).
    With ``pad_to_buckets`` a batch is padded with zero images up to the next of :func:`bucket_sizes`, so a
    static-shape runtime (OpenVINO) compiles a handful of networks instead of one per batch size.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], max_batch: int = 32, max_wait_ms: float = 10.0,
                 pad_to_buckets: bool = False, workers: int = 1,
                 collate: Callable[[list[Any]], Tensor] = torch.stack) -> None:  # fmt: skip
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"--max-batch must be >= 1 and --max-wait-ms >= 0, got {max_batch} and {max_wait_ms}")
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.fn = fn
        self.collate = collate  # submitted items -> the (B, C, H, W) batch, run on the model thread
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.workers = workers
        self.sizes = bucket_sizes(max_batch) if pad_to_buckets else None
        self.stats = BatchStats()
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="crossvit-model")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None  # one per worker; a batch holds one, exclusive work all
        self._exclusive: asyncio.Lock | None = None
        self._running: set[asyncio.Task] = set()

    def _start(self) -> None:
        """Made on first use, inside the server's running loop (asyncio objects belong to one loop)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.workers)
            self._exclusive = asyncio.Lock()
            self._task = asyncio.create_task(self._loop())

    def _padded(self, n: int) -> int:
        return n if self.sizes is None else next(s for s in self.sizes if s >= n)

    def _forward(self, images: Tensor | list[Any]) -> Tensor:
        x = self.collate(images) if isinstance(images, list) else images  # (n, C, H, W), stacked off the loop
        n = x.shape[0]
        b = self._padded(n)
        if b > n:
            x = torch.cat([x, x.new_zeros(b - n, *x.shape[1:])])  # (b, C, H, W)
        with torch.no_grad():
            return self.fn(x)[:n].float().softmax(-1)  # (n, classes)

    def _timed_forward(self, images: list[Any]) -> tuple[Tensor, float]:
        t = time.perf_counter()
        probs = self._forward(images)
        return probs, time.perf_counter() - t

    def warmup(self, image_shape: tuple[int, ...]) -> None:
        """Run every padded batch size once (compiles the static-shape networks before the first request)."""
        for b in self.sizes or [1]:
            self._forward(torch.zeros(b, *image_shape))

    async def run_exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a model thread while no batch runs (for work that touches the same model)."""
        self._start()
        assert self._slots is not None and self._exclusive is not None
        async with self._exclusive:  # one at a time, so two of them never hold half of the slots each
            for _ in range(self.workers):
                await self._slots.acquire()
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
            finally:
                for _ in range(self.workers):
                    self._slots.release()

    async def submit(self, image: Any) -> Tensor:
        """The (classes,) probabilities of one image, preprocessed as far as ``collate`` expects."""
        self._start()
        assert self._queue is not None
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((image, fut))
        return await fut

    async def _fill(self, first: tuple, deadline: float) -> tuple[list, bool]:
        """``first`` and what is queued or comes before ``deadline`` (max_batch at most); True once stop() is called."""
        assert self._queue is not None
        batch = [first]
        loop = asyncio.get_running_loop()
        while len(batch) < self.max_batch:
            try:  # take what is already queued, then wait out the rest of max_wait for more
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if item is None:  # stop() was called: run what we have, then stop
                return batch, True
            batch.append(item)
        return batch, False

    async def _run(self, live: list) -> None:
        """One batch on a worker thread (it holds one of the slots, taken by the caller); answers its futures."""
        assert self._slots is not None
        try:
            images = [x for x, _ in live]
            loop = asyncio.get_running_loop()
            probs, seconds = await loop.run_in_executor(self._executor, self._timed_forward, images)
        except Exception as e:  # noqa: BLE001 - the error goes to each waiting request, the loop goes on
            for _, f in live:
                if not f.done():
                    f.set_exception(e)
            return
        finally:
            self._slots.release()
        self.stats.batches += 1
        self.stats.busy_s += seconds
        self.stats.images += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for (_, f), p in zip(live, probs):
            if not f.done():
                f.set_result(p)

    async def _loop(self) -> None:
        assert self._queue is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while (first := await self._queue.get()) is not None:
            deadline = loop.time() + self.max_wait
            await self._slots.acquire()  # a free worker; while all are busy, images queue up for this batch
            # A worker just freed: its batch's answers go out now and those clients send their next images at
            # once. Waiting max_wait from here (not from the first image's arrival, which the busy workers already
            # used up) lets them join this batch; otherwise the clients stay split into two half-size groups.
            deadline = max(deadline, loop.time() + self.max_wait)
            batch, stopping = await self._fill(first, deadline)
            live = [(x, f) for x, f in batch if not f.cancelled()]  # a client that hung up is not run
            if live:
                task = asyncio.create_task(self._run(live))
                self._running.add(task)  # held until done: the loop keeps no other reference to it
                task.add_done_callback(self._running.discard)
            else:
                self._slots.release()
            if stopping:
                break
        if self._running:
            await asyncio.gather(*self._running)

    async def stop(self) -> None:
        """Finish the queued images, then stop the worker threads."""
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)
            await self._task
        self._executor.shutdown(wait=True)
