"""Rate limits on the game API: per participant and per client address, in the cache.

Fixed windows counted atomically (INCR in Redis, add + incr in the local-memory cache), so
concurrent workers never lose a count. Limits come from settings.GAME_RATE_LIMITS by
the view's `rate_scope`; an address gets the participant limit times
GAME_RATE_LIMIT_ADDRESS_FACTOR, since a classroom or a lab shares one.

When the shared cache (Redis) cannot be reached, counting falls back to this process's own
memory: each web process then limits on its own (a client spread over N processes gets up to
N times the limit) until Redis answers again — play goes on instead of every call failing.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from games.services.participants import address_hash

logger = logging.getLogger(__name__)
# What a cache that cannot be reached raises: redis-py's errors (ConnectionError, TimeoutError)
# derive from RedisError; sockets give OSError.
try:
    from redis.exceptions import RedisError as CacheUnavailable
except ImportError:  # pragma: no cover - redis is a dependency; only the local-memory cache without it
    CacheUnavailable = OSError


class LocalCounters:
    """Fixed-window counters in this process's memory, for when the shared cache is down."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def incr(self, key: str, window: int) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10_000:  # drop expired windows now and then; memory stays small
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            expires, count = self._counts.get(key, (0.0, 0))
            count = count + 1 if expires > now else 1
            self._counts[key] = (expires if expires > now else now + window + 1, count)
            return count


LOCAL = LocalCounters()


def count_in_window(key: str, window: int) -> int:
    """Add one to the window's counter and return it; the counter expires with its window."""
    return count_in_windows([key], window)[0]


def count_in_windows(keys: list[str], window: int) -> list[int]:
    """Add one to each window counter and return them.

    On Redis, all of them in one round trip (INCR creates a missing counter at 1; EXPIRE lets it
    go with its window): a game call checks two counters, and four round trips per call were a
    tenth of the web process's time under load (docs/load-testing.md). Other caches count with
    add + incr, as atomic there.
    """
    try:
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            pipe = backend._cache.get_client(write=True).pipeline(transaction=False)
            for key in keys:
                full = backend.make_and_validate_key(key)
                pipe.incr(full)
                pipe.expire(full, window + 1)
            return [int(count) for count in pipe.execute()[0::2]]
        return [_add_and_incr(backend, key, window) for key in keys]
    except (CacheUnavailable, OSError) as exc:
        logger.warning("rate limits: the cache is unreachable (%s); counting in this process", exc)
        return [LOCAL.incr(key, window) for key in keys]


def _add_and_incr(backend: BaseCache, key: str, window: int) -> int:
    backend.add(key, 0, timeout=window + 1)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr: this request opens a new count
        backend.set(key, 1, timeout=window + 1)
        return 1


class GameRateThrottle(BaseThrottle):
    """Refuse a request once its participant or its address has used up the view's window."""

    def __init__(self) -> None:
        self.retry_after = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        scope = getattr(view, "rate_scope", "other")
        limit, window = settings.GAME_RATE_LIMITS.get(scope, settings.GAME_RATE_LIMITS["other"])
        if limit == 0:
            return True
        now = time.time()
        slot = int(now // window)
        counters = [
            (f"a:{address_hash(self.get_ident(request))[:32]}", limit * settings.GAME_RATE_LIMIT_ADDRESS_FACTOR)
        ]
        if request.auth is not None:  # the participant, from the cookie (games.identity)
            counters.insert(0, (f"p:{request.auth.pk}", limit))
        counts = count_in_windows([f"ratelimit:{scope}:{who}:{slot}" for who, _ in counters], window)
        if any(count > allowed for count, (_, allowed) in zip(counts, counters, strict=True)):
            self.retry_after = (slot + 1) * window - now
            return False
        return True

    def wait(self) -> float:
        return max(self.retry_after, 1.0)


def retry_after_seconds(wait: float | None) -> int:
    """Whole seconds to wait, at least one: what Retry-After and the JSON body say."""
    return max(1, math.ceil(wait or 1))
