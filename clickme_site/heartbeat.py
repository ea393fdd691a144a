"""The workers' heartbeat: a task on beat's schedule stamps the time in the cache; /healthz reads its age.

A stamp proves that beat scheduled the task, the broker carried it and a worker ran it: the
three parts that scoring needs. Its age past HEARTBEAT_STALE_S (three missed beats) means one of
them is gone (docs/operations.md, "Health").
"""

from __future__ import annotations

import time

from django.core.cache import cache

HEARTBEAT_KEY = "clickme:worker-heartbeat"
HEARTBEAT_EVERY_S = 60.0
HEARTBEAT_STALE_S = 3 * HEARTBEAT_EVERY_S


def stamp() -> None:
    """Record that a worker is alive now (kept for a day, far past staleness)."""
    cache.set(HEARTBEAT_KEY, time.time(), timeout=24 * 3600)


def age_s() -> float | None:
    """Seconds since the last stamp, None when there is none; raises what the cache raises."""
    beat = cache.get(HEARTBEAT_KEY)
    return None if beat is None else max(0.0, time.time() - float(beat))
