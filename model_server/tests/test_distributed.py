"""Tests for data-parallel training: two gloo processes on the CPU train what one process does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model_server import distributed, train
from model_server.config import preset
from model_server.network import build

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--widths", "4", "8", "8", "8", "--stem-width", "8"]


def free_port() -> int:
    """A loopback port nobody listens on right now (the process group's rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_step_gradients(
    model: torch.nn.Module, network: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, np.ndarray]:
    """The gradients of one training step's loss (classification plus a term on every GALA map)."""
    logits, maps = network(images, with_attention=True)
    loss = torch.nn.functional.cross_entropy(logits, labels) + sum(m.mean() for m in maps)
    loss.backward()
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build(preset("gala_small", widths=(4, 8, 8, 8), stem_width=8, placement="input"))
    generator = torch.Generator().manual_seed(1)
    return model, torch.rand(8, 3, 96, 96, generator=generator), torch.randint(0, 10, (8,), generator=generator)


def gradient_worker(rank: int, world: int, port: int, results: mp.Queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, images, labels = batch()
        distributed.synchronise_batchnorm(model, cuda=False)
        network = torch.nn.parallel.DistributedDataParallel(model)
        slices = images.chunk(world)[rank], labels.chunk(world)[rank]
        gradients = one_step_gradients(model, network, *slices)
        if rank == 0:
            results.put(gradients)
    finally:
        dist.destroy_process_group()


def test_two_processes_compute_the_gradients_of_one_process_on_the_whole_batch() -> None:
    model, images, labels = batch()
    expected = one_step_gradients(model, model, images, labels)
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    workers = [context.Process(target=gradient_worker, args=(rank, 2, port, results)) for rank in range(2)]
    for worker in workers:
        worker.start()
    got = results.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert set(got) == set(expected)
    for name, gradient in expected.items():
        # BatchNorm statistics shared across the processes: without them the stem's gradients differ by far more.
        # atol: float32 sums in another order leave ~1e-7 of noise on elements that are zero in exact arithmetic
        # (seen on CI: a BatchNorm bias gradient of 2e-8 against -7e-8, with the largest element 3e-2).
        np.testing.assert_allclose(got[name], gradient, rtol=1e-3, atol=1e-5 * np.abs(gradient).max(), err_msg=name)


def test_torchrun_with_two_cpu_processes_trains_what_one_process_trains(tmp_path: Path) -> None:
    argv = ["--demo", "--n-per-class", "2", "--val-per-class", "1", "--epochs", "1", "--batch-size", "4"]
    argv += ["--threads", "1", "--eval-bubbles", "10", "--cotrain", *TINY]
    train.main([*argv, "--out", str(tmp_path / "one.pt")])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    command += ["--master_port", str(free_port()), "-m", "model_server.train", *argv, "--out", str(tmp_path / "two.pt")]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    one, two = (torch.load(tmp_path / name, weights_only=True) for name in ("one.pt", "two.pt"))
    assert two["processes"] == 2 and one["processes"] == 1
    assert [row["step"] for row in two["history"]] == [row["step"] for row in one["history"]]
    for mine, theirs in zip(one["history"], two["history"], strict=True):
        assert theirs["loss_class"] == pytest.approx(mine["loss_class"], rel=1e-3)
        assert theirs["loss_map"] == pytest.approx(mine["loss_map"], rel=1e-3)
    # AdamW moves a weight by up to the learning rate per step whatever the gradient's size, so
    # float rounding in nearly-zero gradients can move a few weights apart by a fraction of it.
    lr = train.TrainConfig().lr
    for name, weights in one["model"].items():
        torch.testing.assert_close(two["model"][name].float(), weights.float(), rtol=1e-3, atol=lr, msg=name)
