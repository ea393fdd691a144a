"""Dynamic batching: infer requests from many clients are merged and run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from model_server.registry import LoadedModel
from model_server.reveal import CROP_SIZE, reveal_batch, thread_buffer
from model_server.statistics import VersionStats

logger = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The queue is full or the server is stopping (answered 503 at once)."""


def _new_future() -> asyncio.Future:
    """Return a future on the running loop (jobs are created by request handlers)."""
    return asyncio.get_running_loop().create_future()


# The event loop only handles plain Python objects: every torch call happens in the worker threads.
# A torch call on the loop thread can give up the GIL and then wait for it behind the workers'
# Python code (measured: torch.tensor on 60 ints took 140 us there under load).


@dataclass
class Job:
    """One infer request's items, validated, waiting for a batch."""

    loaded: LoadedModel
    images: list[torch.Tensor]  # canvases (3, 256, 256) uint8, usually straight from the image cache
    bubbles: list[list[int]]  # per item, flat x0, y0, x1, y1, ... in 0..255 (padding already dropped)
    seeds: list[int]
    bubble_size: int
    top_k: int
    attention: bool
    priority: int = 0  # 0 first (protocol.PRIORITIES)
    future: asyncio.Future = field(default_factory=_new_future)
    queued_ns: int = field(default_factory=time.perf_counter_ns)  # for the queue time in the statistics
    stats: VersionStats | None = None  # its model version's statistics (serve.py), None: not counted

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Prediction:
    """One request's top-k guesses as plain lists, ready for JSON."""

    indices: list[list[int]]  # (B, k)
    probabilities: list[list[float]]  # (B, k)
    attention: list[tuple[list[int], list[float]]]  # per GALA block: shape (B, 1, H, W), flat data


def input_buffer(batch: int, device: torch.device) -> torch.Tensor:
    """This worker thread's (batch, 3, 224, 224) channels-last uint8 buffer for the network's input.

    8-bit pixels, which the network normalises in its first op: a float input would cost a pass
    that only divides by 255. Reused from batch to batch (reveal.thread_buffer): a worker runs one
    batch at a time, and the forward pass has finished with its input when infer returns.
    """
    shape = (batch, 3, CROP_SIZE, CROP_SIZE)
    return thread_buffer("input", shape, torch.uint8, device, channels_last=True)


def infer(
    loaded: LoadedModel,
    images: torch.Tensor,
    bubbles: torch.Tensor,
    seeds: Sequence[int],
    *,
    bubble_size: int,
    top_k: int,
    attention: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Render what the partner sees and return top-k (indices, probabilities) and attention maps.

    Blocking: runs in a worker thread. images (B, 3, 256, 256) uint8, bubbles (B, N, 2) padded
    with -1; returns (B, k) int64, (B, k) float32 and per GALA block (B, 1, H, W), all on the CPU.
    """
    device = loaded.device
    on_gpu = device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
        images = images.to(device, non_blocking=True)
        # Rendered straight into the model's layout (registry.load_model), in this thread's buffer.
        seen = reveal_batch(images, bubbles, None, seeds, size=bubble_size, out=input_buffer(len(seeds), device))
        if attention:
            logits, maps = loaded.model.forward_with_attention(seen)
        else:
            logits, maps = loaded.model(seen), []
        top = logits.float().softmax(dim=1).topk(min(top_k, logits.shape[1]), dim=1)
        return top.indices.cpu(), top.values.cpu(), [gate.float().cpu() for gate in maps]


def run_jobs(jobs: Sequence[Job]) -> list[Prediction]:
    """Merge jobs that share a model version and bubble size into one batch; split the answers."""
    rows = [row for job in jobs for row in job.bubbles]
    width = max(2, *(len(row) for row in rows))
    bubbles = torch.tensor([row + [-1] * (width - len(row)) for row in rows], dtype=torch.int32)
    indices, probabilities, maps = infer(
        jobs[0].loaded,
        # Cached canvases are (3, H, W) views of (H, W, 3) pixels: stacked as they lie, no transpose.
        torch.stack([image.permute(1, 2, 0) for job in jobs for image in job.images]).permute(0, 3, 1, 2),
        bubbles.view(len(rows), -1, 2),  # (B, N, 2)
        [seed for job in jobs for seed in job.seeds],
        bubble_size=jobs[0].bubble_size,
        top_k=max(job.top_k for job in jobs),
        attention=any(job.attention for job in jobs),
    )
    predictions, start = [], 0
    for job in jobs:
        stop = start + len(job)
        predictions.append(
            Prediction(
                indices[start:stop, : job.top_k].tolist(),
                probabilities[start:stop, : job.top_k].tolist(),
                [(list(gate[start:stop].shape), gate[start:stop].flatten().tolist()) for gate in maps]
                if job.attention
                else [],
            )
        )
        start = stop
    return predictions


class DynamicBatcher:
    """Queue infer jobs and run them in batches of up to max_batch_size items.

    A batch closes when it is full or max_delay_ms after its first job arrived. `workers`
    batches run at once in the executor; while they run, the next batch fills, so under load
    batches are full without waiting for the delay.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        workers: int,
    ) -> None:
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000
        self.max_queue = max_queue
        self.workers = workers
        self.queued_items = 0
        self.batches = 0
        self.batched_items = 0
        # (priority, arrival, job): the most urgent first, first come first served within a priority.
        self._queue: asyncio.PriorityQueue[tuple[int, int, Job]] = asyncio.PriorityQueue()
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

    async def submit(self, job: Job) -> Prediction:
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
        carry: Job | None = None
        while True:
            batch = [carry if carry is not None else (await self._queue.get())[-1]]
            carry = await self._fill(batch)
            for job in batch:
                self.queued_items -= len(job)
            await self._run(batch)

    async def _fill(self, batch: list[Job]) -> Job | None:
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

    async def _run(self, batch: list[Job]) -> None:
        """Run a batch in the executor, one merged call per (model version, bubble size)."""
        groups: dict[tuple[int, int], list[Job]] = {}
        for job in batch:
            groups.setdefault((id(job.loaded), job.bubble_size), []).append(job)
        loop = asyncio.get_running_loop()
        for jobs in groups.values():
            live = [job for job in jobs if not job.future.done()]  # skip clients that went away
            if not live:
                continue
            self.batches += 1
            self.batched_items += sum(len(job) for job in live)
            started = time.perf_counter_ns()
            try:
                predictions = await loop.run_in_executor(self.executor, run_jobs, live)
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

    def _count(self, jobs: list[Job], started: int, finished: int) -> None:
        """Add one batch's queue and compute times to its model version's statistics (jobs share the version)."""
        stats = jobs[0].stats
        if stats is None:
            return
        stats.batch(sum(len(job) for job in jobs), finished - started)
        for job in jobs:
            stats.add("queue", started - job.queued_ns)
            stats.add("compute_infer", finished - started)
