"""One map build for an image's rounds counted close together (docs/maps-and-reliability.md, "When a map is rebuilt").

Every counted round asks for its image's map to be rebuilt, and a rebuild reads all the image's
raw clicks again. Under load an image's rounds arrive seconds apart, so the first request waits
MAP_BUILD_COALESCE_S before its build starts, and the requests that come while it waits enqueue
nothing: the waiting build starts after their rounds were committed, so it reads them.

A marker in the cache says that a build waits; the build clears it as it starts, before it reads
anything, so a round counted after that asks for a build of its own. The marker is only a saving,
and nothing here raises: a cache that cannot be reached means every request enqueues its own
build, and the marker of a build that was lost expires after the wait and MARKER_GRACE_S, when
the map sweep (maps/sweep.py), which never waits, rebuilds the map.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

# How long a marker outlives its build's wait: a worker with a backlog starts the build late, and
# the requests meanwhile still have a build to wait for.
MARKER_GRACE_S = 120


def _key(experiment_id: int, image_id: int) -> str:
    return f"map-build-pending:{experiment_id}:{image_id}"


def claim(experiment_id: int, image_id: int, *, wait_s: int) -> bool:
    """Whether this request enqueues the build: True unless a build already waits (True when the cache cannot say)."""
    try:
        return bool(cache.add(_key(experiment_id, image_id), 1, timeout=wait_s + MARKER_GRACE_S))
    except Exception as exc:  # the Redis client raises its own errors, not OSError
        logger.warning("could not mark the map of image %s as waiting for a build: %s", image_id, exc)
        return True


def release(experiment_id: int, image_id: int) -> None:
    """Forget the marker: the build starts now (or was never enqueued), so the next round asks for another."""
    try:
        cache.delete(_key(experiment_id, image_id))
    except Exception as exc:  # as above; the marker then expires by itself
        logger.warning("could not clear the waiting-build mark of image %s: %s", image_id, exc)
