"""Dynamic batching: jobs from many clients are merged and run off the event loop by a given batch function.

Generic: the batcher knows jobs only as BatchJob (a size, a priority, a future) and is given the
function that runs a batch in a worker thread, and the key that says which jobs may share a call.
The partner's batch function is inference.run_jobs (serve.py wires them together).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from model_server.statistics import VersionStats

logger = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The queue is full or the server is stopping (answered 503 at once)."""


def _new_future() -> asyncio.Future:
    """Return a future on the running loop (jobs are created by request handlers)."""
    return asyncio.get_running_loop().create_future()


# The event loop only handles plain Python objects: every torch call happens in the worker threads,
# inside the batch function. A torch call on the loop thread can give up the GIL and then wait for
# it behind the workers' Python code (measured: torch.tensor on 60 ints took 140 us there under load).


@dataclass(kw_only=True)
class BatchJob:
    """What the batcher needs of a job; a job type adds its own fields and `__len__` (its items)."""

    priority: int = 0  # 0 first (wire.PRIORITIES)
    future: asyncio.Future = field(default_factory=_new_future)
    queued_ns: int = field(default_factory=time.perf_counter_ns)  # for the queue time in the statistics
    stats: VersionStats | None = None  # its model version's statistics (serve.py), None: not counted

    def __len__(self) -> int:
        raise NotImplementedError


BatchFunction = Callable[[Sequence[Any]], list[Any]]  # jobs -> one result per job, in a worker thread


class DynamicBatcher:
    """Queue infer jobs and run them in batches of up to max_batch_size items.

    A batch closes when it is full or max_delay_ms after its first job arrived. `workers`
    batches run at once in the executor; while they run, the next batch fills, so under load
    batches are full without waiting for the delay.
    """

    def __init__(
        self,
        executor: Executor,
        run_batch: BatchFunction,
        *,
        group_key: Callable[[Any], Hashable] = lambda job: None,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        workers: int,
    ) -> None:
        self.executor = executor
        self.run_batch, self.group_key = run_batch, group_key
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000
        self.max_queue = max_queue
        self.workers = workers
        self.queued_items = 0
        self.batches = 0
        self.batched_items = 0
        # (priority, arrival, job): the most urgent first, first come first served within a priority.
        self._queue: asyncio.PriorityQueue[tuple[int, int, BatchJob]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """Start the worker tasks on the running loop."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        """Stop the workers and fail the jobs still queued."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            *_, job = self._queue.get_nowait()
            job.future.set_exception(Overloaded("the server is shutting down"))

    async def submit(self, job: BatchJob) -> Any:
        """Queue a job and await its prediction; raise Overloaded at once when the queue is full."""
        if self.queued_items + len(job) > self.max_queue:
            raise Overloaded(f"server overloaded: {self.queued_items} items already queued")
        self.queued_items += len(job)
        self._queue.put_nowait((job.priority, next(self._arrivals), job))
        return await job.future

    def stats(self) -> dict[str, float]:
        """Return queue and batch counters for monitoring and benchmarks."""
        return {"queued_items": self.queued_items, "batches": self.batches, "batched_items": self.batched_items}

    async def _work(self) -> None:
        """Collect batches and run them, forever."""
        carry: BatchJob | None = None
        while True:
            batch = [carry if carry is not None else (await self._queue.get())[-1]]
            carry = await self._fill(batch)
            for job in batch:
                self.queued_items -= len(job)
            await self._run(batch)

    async def _fill(self, batch: list[BatchJob]) -> BatchJob | None:
        """Add queued jobs to the batch until it is full or the delay ran out; return overflow."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        size = len(batch[0])
        while size < self.max_batch_size:
            try:
                *_, job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop an item
                    # that arrives just as the delay runs out.
                    async with asyncio.timeout(remaining):
                        *_, job = await self._queue.get()
                except TimeoutError:
                    return None
            if size + len(job) > self.max_batch_size:
                return job  # starts the next batch, so a batch never exceeds the maximum
            batch.append(job)
            size += len(job)
        return None

    async def _run(self, batch: list[BatchJob]) -> None:
        """Run a batch in the executor, one call of the batch function per group_key."""
        groups: dict[Hashable, list[BatchJob]] = {}
        for job in batch:
            groups.setdefault(self.group_key(job), []).append(job)
        loop = asyncio.get_running_loop()
        for jobs in groups.values():
            live = [job for job in jobs if not job.future.done()]  # skip clients that went away
            if not live:
                continue
            self.batches += 1
            self.batched_items += sum(len(job) for job in live)
            started = time.perf_counter_ns()
            try:
                predictions = await loop.run_in_executor(self.executor, self.run_batch, live)
            except Exception as error:  # any failure is reported to each waiting request (500)
                logger.exception("batch of %d jobs failed", len(live))
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            self._count(live, started, time.perf_counter_ns())
            for job, prediction in zip(live, predictions, strict=True):
                if not job.future.done():
                    job.future.set_result(prediction)

    def _count(self, jobs: list[BatchJob], started: int, finished: int) -> None:
        """Add one batch's queue and compute times to its model version's statistics (jobs share the version)."""
        stats = jobs[0].stats
        if stats is None:
            return
        stats.batch(sum(len(job) for job in jobs), finished - started)
        for job in jobs:
            stats.add("queue", started - job.queued_ns)
            stats.add("compute_infer", finished - started)
