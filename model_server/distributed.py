"""Data-parallel training across processes: ``torchrun --nproc_per_node N -m model_server.train ...``.

torchrun starts N copies of ``train`` with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; each
joins one process group (NCCL on GPUs, gloo on the CPU), wraps the network in
``DistributedDataParallel`` and trains on its 1/N slice of every batch (docs/training.md,
"Scale-out"). BatchNorm statistics are synchronised across the processes, so the N processes
together train what one process would on the whole batch: torch's ``SyncBatchNorm`` on GPUs, and
on the CPU, where torch 2.13's ``SyncBatchNorm`` refuses to run, ``DistributedBatchNorm2d``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional
from torch import nn

# torch 2.13 points at a private module instead; the public, differentiable all_reduce still works.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")


@dataclass(frozen=True)
class Context:
    """Where this process stands among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Whether this process evaluates, logs and writes the checkpoint."""
        return self.rank == 0


def setup(device: str) -> Context:
    """Join the process group torchrun describes in the environment; a lone process joins nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Context(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Context(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown(context: Context) -> None:
    """Leave the process group (every process, after the last collective)."""
    if context.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole batch across all processes.

    Sums, sums of squares and counts are all-reduced with ``torch.distributed.nn.functional``'s
    differentiable all_reduce, so gradients flow through the shared mean and variance as they do
    through a single process's. Evaluation uses the running statistics, as BatchNorm2d does, and
    the parameter and buffer names are BatchNorm2d's, so checkpoints load into the plain network.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x (B, C, H, W) with the statistics of every process's batch."""
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        # Two passes (the mean, then squared deviations from it) rather than E[x^2] - E[x]^2,
        # whose cancellation would make the processes' training drift from one process's.
        count = x.new_tensor([x.numel() / x.shape[1]])
        sums = dist_functional.all_reduce(torch.cat([x.sum((0, 2, 3)), count]))  # (C + 1,)
        total = sums[-1]
        mean = sums[:-1] / total
        var = dist_functional.all_reduce((x - mean.view(1, -1, 1, 1)).square().sum((0, 2, 3))) / total
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * total / (total - 1).clamp_min(1)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(unbiased.detach(), momentum)
        # Written out rather than F.batch_norm(training=False), which passes no gradient to mean and var.
        scale = torch.rsqrt(var + self.eps) * self.weight
        return torch.addcmul((self.bias - mean * scale).view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))


def synchronise_batchnorm(model: nn.Module, cuda: bool) -> nn.Module:
    """Replace every BatchNorm2d by one whose statistics span the processes (in place; returns model)."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            shared = DistributedBatchNorm2d(child.num_features, child.eps, child.momentum)
            shared.load_state_dict(child.state_dict())
            setattr(model, name, shared)
        else:
            synchronise_batchnorm(child, cuda)
    return model


def mean_over_processes(values: torch.Tensor, context: Context) -> torch.Tensor:
    """The mean of a tensor over all processes (for logging the loss terms of the whole batch)."""
    if context.world == 1:
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values / context.world


def barrier(context: Context) -> None:
    """Wait until every process gets here."""
    if context.world > 1:
        dist.barrier()
