"""Dynamic batching: images from concurrent requests are stacked into one forward pass, run on a worker thread.

The event loop only queues work and wakes futures; the model runs on one dedicated thread, so calls never overlap
(the torch model's attention-map switches and OpenVINO's infer requests are not meant for concurrent use) and
the loop stays free to accept and decode other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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

    def to_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest}


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
    With ``pad_to_buckets`` a batch is padded with zero images up to the next of :func:`bucket_sizes`, so a
    static-shape runtime (OpenVINO) compiles a handful of networks instead of one per batch size.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], max_batch: int = 32, max_wait_ms: float = 10.0,
                 pad_to_buckets: bool = False) -> None:  # fmt: skip
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"--max-batch must be >= 1 and --max-wait-ms >= 0, got {max_batch} and {max_wait_ms}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.sizes = bucket_sizes(max_batch) if pad_to_buckets else None
        self.stats = BatchStats()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="crossvit-model")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def _padded(self, n: int) -> int:
        return n if self.sizes is None else next(s for s in self.sizes if s >= n)

    def _forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        b = self._padded(n)
        if b > n:
            x = torch.cat([x, x.new_zeros(b - n, *x.shape[1:])])  # (b, C, H, W)
        with torch.no_grad():
            return self.fn(x)[:n].float().softmax(-1)  # (n, classes)

    def warmup(self, image_shape: tuple[int, ...]) -> None:
        """Run every padded batch size once (compiles the static-shape networks before the first request)."""
        for b in self.sizes or [1]:
            self._forward(torch.zeros(b, *image_shape))

    async def run_exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread, between batches (for work that touches the same model)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, image: Tensor) -> Tensor:
        """The (classes,) probabilities of one preprocessed (C, H, W) image."""
        if self._queue is None:  # started on first use, inside the server's running loop
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop())
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((image, fut))
        return await fut

    async def _collect(self) -> list | None:
        assert self._queue is not None
        first = await self._queue.get()
        if first is None:
            return None
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
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
                self._queue.put_nowait(None)
                break
            batch.append(item)
        return batch

    async def _loop(self) -> None:
        while (batch := await self._collect()) is not None:
            live = [(x, f) for x, f in batch if not f.cancelled()]  # a client that hung up is not run
            if not live:
                continue
            try:
                x = torch.stack([x for x, _ in live])  # (B, C, H, W)
                probs = await self.run_exclusive(self._forward, x)
            except Exception as e:  # noqa: BLE001 - the error goes to each waiting request, the loop goes on
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.images += len(live)
            self.stats.largest = max(self.stats.largest, len(live))
            for (_, f), p in zip(live, probs):
                if not f.done():
                    f.set_result(p)

    async def stop(self) -> None:
        """Finish the queued images, then stop the worker thread."""
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)
            await self._task
        self._executor.shutdown(wait=True)
