"""Inference statistics per model version, in the shape of the protocol's statistics extension (Triton's).

Durations are nanoseconds summed over requests (success, fail, queue, compute_*) or batches (batch_stats), as
Triton reports them; `inference_count` counts items and `execution_count` batches run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class VersionStats:
    """The counters of one model version (mutated on the event loop only)."""

    last_inference: int = 0  # milliseconds since the epoch
    inference_count: int = 0
    execution_count: int = 0
    phases: dict[str, list[int]] = field(default_factory=lambda: {phase: [0, 0] for phase in PHASES})
    batches: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, phase: str, nanoseconds: int, count: int = 1) -> None:
        """Count `count` requests that spent `nanoseconds` in a phase."""
        self.phases[phase][0] += count
        self.phases[phase][1] += nanoseconds

    def batch(self, items: int, nanoseconds: int) -> None:
        """Count one batch of `items` run in `nanoseconds`."""
        self.execution_count += 1
        self.inference_count += items
        self.last_inference = time.time_ns() // 1_000_000
        self.batches[items][0] += 1
        self.batches[items][1] += nanoseconds

    def as_json(self, name: str, version: str) -> dict:
        """Describe these counters as one entry of the statistics response."""
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {phase: {"count": count, "ns": ns} for phase, (count, ns) in self.phases.items()},
            "batch_stats": [
                {"batch_size": size, "compute_infer": {"count": count, "ns": ns}}
                for size, (count, ns) in sorted(self.batches.items())
            ],
        }


class Statistics:
    """Statistics of every model version the server has run."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], VersionStats] = defaultdict(VersionStats)

    def of(self, name: str, version: str) -> VersionStats:
        """Return (creating) the counters of a model version."""
        return self._versions[(name, version)]
