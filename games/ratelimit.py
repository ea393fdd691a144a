"""Rate limits on the game API (SPEC §6): per participant and per client address, in the cache.

Fixed windows counted with cache.add + cache.incr, both atomic in Redis and in the local-memory
cache, so concurrent workers never lose a count. Limits come from settings.GAME_RATE_LIMITS by
the view's `rate_scope`; an address gets the participant limit times
GAME_RATE_LIMIT_ADDRESS_FACTOR, since a classroom or a lab shares one.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from games.services.participants import address_hash


def _count(key: str, window: int) -> int:
    """Add one to the window's counter and return it; the counter expires with its window."""
    cache.add(key, 0, timeout=window + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens a new count
        cache.set(key, 1, timeout=window + 1)
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
        for who, allowed in counters:
            if _count(f"ratelimit:{scope}:{who}:{slot}", window) > allowed:
                self.retry_after = (slot + 1) * window - now
                return False
        return True

    def wait(self) -> float:
        return max(self.retry_after, 1.0)


def retry_after_seconds(wait: float | None) -> int:
    """Whole seconds to wait, at least one: what Retry-After and the JSON body say."""
    return max(1, math.ceil(wait or 1))
