"""The partner's batch function: what the GALA network sees for each item, its forward pass, top-k.

`run_jobs` is what serve.py hands the generic DynamicBatcher (batching.py): it merges the jobs of
one model version and bubble size (`batch_key`) into one tensor batch, renders the revealed
bubbles over the noised image (reveal.py), runs the network and splits the answers per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model_server.batching import BatchJob
from model_server.registry import LoadedModel
from model_server.reveal import CROP_SIZE, reveal_batch, thread_buffer


@dataclass
class Job(BatchJob):
    """One infer request's items, validated, waiting for a batch."""

    loaded: LoadedModel
    images: list[torch.Tensor]  # canvases (3, 256, 256) uint8, usually straight from the image cache
    bubbles: list[list[int]]  # per item, flat x0, y0, x1, y1, ... in 0..255 (padding already dropped)
    seeds: list[int]
    bubble_size: int
    top_k: int
    attention: bool

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


def batch_key(job: Job) -> tuple[int, int]:
    """Jobs of one model version and bubble size run as one merged call."""
    return id(job.loaded), job.bubble_size


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
