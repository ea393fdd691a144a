"""CPU-seconds per process kind, read from the OS (psutil) around a stage of the ramp."""

from __future__ import annotations

import psutil

KINDS = ("web", "worker", "model", "postgres", "redis")


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(stack) -> dict[str, float]:
    """user+system CPU so far of each kind: process trees of the stack, Postgres backends of its database.

    Beat is counted with the worker. Postgres's shared background processes (checkpointer, WAL
    writer) serve every database on the machine and are not counted.
    """
    pids = {
        "web": [stack.processes["web"].pid],
        "worker": [stack.processes["worker"].pid, stack.processes["beat"].pid],
        "model": [stack.processes["model"].pid],
        "redis": [stack.processes["redis"].pid],
    }
    totals = dict.fromkeys(KINDS, 0.0)
    for kind, roots in pids.items():
        for root in roots:
            for process in _tree(root):
                try:
                    times = process.cpu_times()
                    totals[kind] += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
    for pid in stack.postgres_backends():
        try:
            times = psutil.Process(pid).cpu_times()
            totals["postgres"] += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return totals


def machine_busy() -> float:
    """Share of the machine's CPU in use (all processes, everyone's) since the last call."""
    return psutil.cpu_percent(interval=None) / 100
