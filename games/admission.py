"""Admission at a study's door: a cap on new players a minute, so a viral day slows the door, not the game.

A new arrival (someone who has not yet consented to the study) is let in while fewer than
settings.ADMISSION_PLAYERS_PER_MINUTE have been let in this minute; the others get a "busy, try
again in a minute" page with Retry-After, which reloads itself. Players already in are never
refused, so nobody's clicks are lost to the cap. The cap is the sustainable load `make load`
measures (docs/load-testing.md), divided by how many minutes a player stays; docs/operations.md,
"A busy day", says how to size it. Counted in the shared cache with the rate limits' counters (and
in this process's memory while the cache is down).
"""

from __future__ import annotations

import math
import time

from django.conf import settings

from games.ratelimit import count_in_window

WINDOW_S = 60


def admission_wait() -> int | None:
    """Count one new arrival; return None to let it in, or the seconds until the door reopens."""
    limit = settings.ADMISSION_PLAYERS_PER_MINUTE
    if limit == 0:
        return None
    now = time.time()
    slot = int(now // WINDOW_S)
    if count_in_window(f"admission:{slot}", WINDOW_S) <= limit:
        return None
    return max(1, math.ceil((slot + 1) * WINDOW_S - now))
