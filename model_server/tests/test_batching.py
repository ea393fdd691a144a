"""The dynamic batcher: waiting live guesses are batched before waiting bulk re-scoring."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from model_server.batching import BatchJob, DynamicBatcher


@dataclass
class Named(BatchJob):
    """A one-item job that only has a name: the batcher needs nothing else."""

    loaded: str

    def __len__(self) -> int:
        return 1


def job(name: str, priority: int) -> Named:
    return Named(loaded=name, priority=priority)


def test_interactive_jobs_waiting_behind_a_busy_worker_run_before_earlier_bulk_jobs() -> None:
    order: list[str] = []
    release = threading.Event()

    def run_jobs(jobs: list[Named]) -> list[str]:
        if jobs[0].loaded == "first":
            release.wait(5)  # the worker is busy while the others queue up
        order.extend(job.loaded for job in jobs)
        return [job.loaded for job in jobs]

    async def scenario() -> None:
        batcher = DynamicBatcher(
            ThreadPoolExecutor(1), run_jobs, max_batch_size=1, max_delay_ms=0, max_queue=100, workers=1
        )
        batcher.start()
        first = asyncio.create_task(batcher.submit(job("first", 1)))
        await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(batcher.submit(job(name, rank))) for name, rank in
                   [("bulk-1", 1), ("bulk-2", 1), ("live-1", 0), ("bulk-3", 1), ("live-2", 0)]]  # fmt: skip
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *waiting)
        await batcher.stop()

    started = time.perf_counter()
    asyncio.run(scenario())
    assert time.perf_counter() - started < 5
    assert order == ["first", "live-1", "live-2", "bulk-1", "bulk-2", "bulk-3"]
