"""The workers' heartbeat: each Celery worker stamps the time in the cache; /healthz reads its age.

The stamp comes from a thread in the worker's main process, started when the worker is ready
(`worker_ready`, connected in clickme_site/celery.py), not from a task: a task would wait in the
queue behind a backlog of scoring, and a worker that is alive but behind would look dead. How
far behind the workers are is the health check's other number, the age of the oldest unscored
round. A stamp older than HEARTBEAT_STALE_S (three missed beats) means no worker is running, or
none can reach the cache (docs/operations.md, "Health").
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "clickme:worker-heartbeat"
HEARTBEAT_EVERY_S = 20.0
HEARTBEAT_STALE_S = 3 * HEARTBEAT_EVERY_S


def stamp() -> None:
    """Record that a worker is alive now (kept for a day, far past staleness)."""
    cache.set(HEARTBEAT_KEY, time.time(), timeout=24 * 3600)


def age_s() -> float | None:
    """Seconds since the last stamp, None when there is none; raises what the cache raises."""
    beat = cache.get(HEARTBEAT_KEY)
    return None if beat is None else max(0.0, time.time() - float(beat))


def _beat_forever() -> None:
    while True:
        try:
            stamp()
        except Exception as exc:  # the cache is down: try again at the next beat
            logger.warning("worker heartbeat: could not stamp the cache: %s", exc)
        time.sleep(HEARTBEAT_EVERY_S)


def start_beating(**kwargs: object) -> None:
    """Start the heartbeat thread in the worker's main process (a daemon: it ends with the worker).

    Connected to Celery's `worker_ready` in clickme_site/celery.py.
    """
    threading.Thread(target=_beat_forever, name="clickme-heartbeat", daemon=True).start()
