"""Dynamic batching: infer requests from many clients are merged and run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from model_server.registry import LoadedModel
from model_server.reveal import reveal_batch

logger = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The queue is full or the server is stopping (answered 503 at once)."""


def _new_future() -> asyncio.Future:
    """Return a future on the running loop (jobs are created by request handlers)."""
    return asyncio.get_running_loop().create_future()


@dataclass
class Job:
    """One infer request's items, validated, waiting for a batch."""

    loaded: LoadedModel
    # Canvases (3, 256, 256) uint8, often straight from the image cache: they are stacked once,
    # with the rest of the batch, in the worker thread rather than on the event loop.
    images: list[torch.Tensor]
    bubbles: torch.Tensor  # (B, N, 2) int32, padded with -1 (reveal ignores negative rows)
    seeds: torch.Tensor  # (B,) int64
    bubble_size: int
    top_k: int
    attention: bool
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Prediction:
    """Top-k guesses for a batch, on the CPU."""

    indices: torch.Tensor  # (B, k) int64
    probabilities: torch.Tensor  # (B, k) float32
    attention: list[torch.Tensor]  # per GALA block (B, 1, H, W) float32; empty unless asked

    def rows(self, start: int, stop: int, top_k: int) -> Prediction:
        """Return the slice of one request: its rows and its own k."""
        return Prediction(
            self.indices[start:stop, :top_k],
            self.probabilities[start:stop, :top_k],
            [maps[start:stop] for maps in self.attention],
        )


def infer(
    loaded: LoadedModel,
    images: torch.Tensor,
    bubbles: torch.Tensor,
    seeds: torch.Tensor,
    *,
    bubble_size: int,
    top_k: int,
    attention: bool,
) -> Prediction:
    """Render what the partner sees and return its top-k guesses (blocking: a worker thread)."""
    device = loaded.device
    on_gpu = device.type == "cuda"
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu),
    ):
        images = images.to(device, non_blocking=True)
        seen = reveal_batch(images, bubbles, None, seeds, size=bubble_size)  # (B, 3, 224, 224)
        seen = seen.contiguous(memory_format=torch.channels_last)  # the model's layout (registry.load_model)
        if attention:
            logits, maps = loaded.model.forward_with_attention(seen)
        else:
            logits, maps = loaded.model(seen), []
        top = logits.float().softmax(dim=1).topk(min(top_k, logits.shape[1]), dim=1)
        return Prediction(top.indices.cpu(), top.values.cpu(), [gate.float().cpu() for gate in maps])


def pad_to(bubbles: torch.Tensor, length: int) -> torch.Tensor:
    """Pad (B, N, 2) bubbles with -1 rows to (B, length, 2)."""
    missing = length - bubbles.shape[1]
    if missing <= 0:
        return bubbles
    padding = bubbles.new_full((bubbles.shape[0], missing, 2), -1)
    return torch.cat([bubbles, padding], dim=1)


def run_jobs(jobs: Sequence[Job]) -> list[Prediction]:
    """Merge jobs that share a model version and bubble size into one batch and split the result."""
    longest = max(job.bubbles.shape[1] for job in jobs)
    top_k = max(job.top_k for job in jobs)
    merged = infer(
        jobs[0].loaded,
        torch.stack([image for job in jobs for image in job.images]),
        torch.cat([pad_to(job.bubbles, longest) for job in jobs]),
        torch.cat([job.seeds for job in jobs]),
        bubble_size=jobs[0].bubble_size,
        top_k=top_k,
        attention=any(job.attention for job in jobs),
    )
    predictions, start = [], 0
    for job in jobs:
        predictions.append(merged.rows(start, start + len(job), job.top_k))
        start += len(job)
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
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
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
            job = self._queue.get_nowait()
            job.future.set_exception(Overloaded("the server is shutting down"))

    async def submit(self, job: Job) -> Prediction:
        """Queue a job and await its prediction; raise Overloaded at once when the queue is full."""
        if self.queued_items + len(job) > self.max_queue:
            raise Overloaded(f"server overloaded: {self.queued_items} items already queued")
        self.queued_items += len(job)
        self._queue.put_nowait(job)
        return await job.future

    def stats(self) -> dict[str, float]:
        """Return queue and batch counters for monitoring and benchmarks."""
        return {"queued_items": self.queued_items, "batches": self.batches, "batched_items": self.batched_items}

    async def _work(self) -> None:
        """Collect batches and run them, forever."""
        carry: Job | None = None
        while True:
            batch = [carry if carry is not None else await self._queue.get()]
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
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop an item
                    # that arrives just as the delay runs out.
                    async with asyncio.timeout(remaining):
                        job = await self._queue.get()
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
            try:
                predictions = await loop.run_in_executor(self.executor, run_jobs, live)
            except Exception as error:  # any failure is reported to each waiting request (500)
                logger.exception("batch of %d jobs failed", len(live))
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            for job, prediction in zip(live, predictions, strict=True):
                if not job.future.done():
                    job.future.set_result(prediction)
