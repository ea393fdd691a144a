"""The painting rules (docs/game-api.md, "Painting") as checks on uploaded bubbles: pure functions, no database.

The browser adds a bubble every `bubble_interval_ms`, at most `bubble_max_step` px from the
previous one, for at most `time_limit_ms`. Anything an honest browser cannot produce is refused,
so forged uploads (too fast, teleporting, too late) never reach a round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from games.models import IMAGE_SIZE

Bubble = tuple[int, int, int]  # (x, y, t_ms)
# Timers and integer rounding can make two honest bubbles look slightly closer in time, and
# rounding both ends of a 7 px step to whole pixels can stretch it by up to √2/2 px.
TIME_SLACK_MS = 2
STEP_SLACK_PX = 1.0


class PaintingRuleBroken(ValueError):
    """Bubbles that the painting rules cannot produce; the message says which rule."""


def max_bubbles(settings: dict) -> int:
    """The most bubbles one round can hold under its rules."""
    return settings["time_limit_ms"] // settings["bubble_interval_ms"] + 1


def check_bubbles(bubbles: Sequence[Bubble], *, previous: Bubble | None, stored: int, settings: dict) -> None:
    """Raise PaintingRuleBroken unless `bubbles` may follow `previous` (the last stored bubble)."""
    if stored + len(bubbles) > max_bubbles(settings):
        raise PaintingRuleBroken(f"too many bubbles: a round holds at most {max_bubbles(settings)}")
    min_gap = settings["bubble_interval_ms"] - TIME_SLACK_MS
    max_step = settings["bubble_max_step"] + STEP_SLACK_PX
    for index, (x, y, t_ms) in enumerate(bubbles):
        seq = stored + index
        if not (0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE):
            raise PaintingRuleBroken(f"bubble {seq}: ({x}, {y}) is outside the {IMAGE_SIZE}×{IMAGE_SIZE} image")
        if not 0 <= t_ms <= settings["time_limit_ms"]:
            raise PaintingRuleBroken(f"bubble {seq}: t_ms {t_ms} is outside 0..{settings['time_limit_ms']}")
        if previous is not None:
            px, py, pt = previous
            if t_ms < pt:
                raise PaintingRuleBroken(f"bubble {seq}: t_ms {t_ms} is earlier than the previous bubble's {pt}")
            if t_ms - pt < min_gap:
                raise PaintingRuleBroken(
                    f"bubble {seq}: {t_ms - pt} ms after the previous one; painting adds one every "
                    f"{settings['bubble_interval_ms']} ms"
                )
            if math.hypot(x - px, y - py) > max_step:
                raise PaintingRuleBroken(
                    f"bubble {seq}: {math.hypot(x - px, y - py):.1f} px from the previous one; painting moves "
                    f"at most {settings['bubble_max_step']} px per bubble"
                )
        previous = (x, y, t_ms)


def points_for(*, recognised_at_ms: int | None, settings: dict) -> int:
    """Points of a round: max_points × (1 − elapsed / time limit) at recognition, else 0 (docs/game-api.md)."""
    if recognised_at_ms is None:
        return 0
    fraction_left = max(0.0, 1.0 - recognised_at_ms / settings["time_limit_ms"])
    return round(settings["max_points"] * fraction_left)
