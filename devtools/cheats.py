"""Cheating painters for `simulate_players --cheat KIND`: one per kind of cheating the quality rules catch.

Design: docs/architecture.md, "Quality and moderation".

Like devtools.simulation, pure functions of a mask, the round's rules and a seeded generator; each
returns the bubbles a cheater would upload for one round. Only `forged_fast` breaks the painting
rules (the server refuses it at upload); the others upload what the server accepts and are left
to the quality rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from devtools.simulation import IMAGE_SIZE, Bubble, Hand, Rules, object_pixels, paint, step_towards

Painter = Callable[["np.ndarray | None", Rules, np.random.Generator], list[Bubble]]
REPLAY_SEED = 20240601  # every replay bot replays the same recorded path, on every round and account
AWAY_PX = 24  # how far from the object an off-object cheater stays


def _grown(mask: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(mask.astype(np.int64), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    side = 2 * radius + 1
    box = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    return box[: mask.shape[0], : mask.shape[1]] > 0


def off_object(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator) -> list[Bubble]:
    """A human-like trail, but over the background, away from the object (or the image's edges without a mask)."""
    if mask is None or object_pixels(mask) is None:
        away = np.ones((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        away[48:-48, 48:-48] = False  # players look at the middle: the cheater paints the borders
    else:
        away = ~_grown(np.asarray(mask, dtype=bool), AWAY_PX)
    return paint(away, rules, rng)


def _clocked(points: list[tuple[int, int]], rules: Rules, jitter: Callable[[], int] | None = None) -> list[Bubble]:
    """Time-stamp points one interval apart (plus `jitter`), cut at the time limit."""
    bubbles, t_ms = [], 0
    for x, y in points:
        if t_ms > rules.time_limit_ms:
            break
        bubbles.append((x, y, t_ms))
        t_ms += rules.interval_ms + (jitter() if jitter else 0)
    return bubbles


def _walk(
    start: tuple[int, int], targets: list[tuple[float, float]], rules: Rules, limit: int
) -> list[tuple[int, int]]:
    """Points one full step apart along straight segments through `targets`."""
    points = [start]
    for target in targets:
        while len(points) < limit:
            step = step_towards(points[-1], target, rules.max_step)
            if step is None:
                break
            points.append(step)
    return points


def periodic_bot(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator) -> list[Bubble]:
    """A bot on an exact clock (one bubble every interval, to the ms) in straight segments over the object."""
    pixels = object_pixels(mask)
    if pixels is None:
        pixels = rng.uniform(64, IMAGE_SIZE - 64, (200, 2))
    limit = rules.time_limit_ms // rules.interval_ms + 1
    picks = pixels[rng.integers(0, len(pixels), 40)]
    start = (int(picks[0][0]), int(picks[0][1]))
    return _clocked(_walk(start, [tuple(p) for p in picks[1:]], rules, limit), rules)


def raster(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator) -> list[Bubble]:
    """A grid sweep: rows one bubble apart, left to right then back, with a browser's timer jitter."""
    limit = rules.time_limit_ms // rules.interval_ms + 1
    row_gap = rules.bubble_size - 7  # overlapping rows uncover everything
    margin = rules.bubble_size // 2
    y = int(rng.integers(margin, 3 * margin))
    targets: list[tuple[float, float]] = []
    left = True
    while y < IMAGE_SIZE - margin:
        end = IMAGE_SIZE - 1 - margin if left else margin
        targets += [(end, y), (end, y + row_gap)]
        left, y = not left, y + row_gap
    hand = Hand()
    points = _walk((margin, targets[0][1] if targets else margin), targets, rules, limit)
    return _clocked(points, rules, lambda: int(rng.exponential(hand.late_ms)))


def recorded_path(rules: Rules) -> list[Bubble]:
    """The one path every replay bot replays: an honest trail recorded once, on a disc in the middle."""
    yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    disc = (xx - 128) ** 2 + (yy - 128) ** 2 < 50**2
    return paint(disc, rules, np.random.default_rng(REPLAY_SEED))


def replay(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator) -> list[Bubble]:
    """The recorded path again, whatever the image: exactly, as a script replaying a capture would."""
    return recorded_path(rules)


def forged_fast(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator) -> list[Bubble]:
    """An honest-looking trail uploaded 2.5× faster than painting allows, or with times past the time limit."""
    trail = paint(mask, rules, rng)
    if rng.random() < 0.5:
        return [(x, y, math.floor(t / 2.5)) for x, y, t in trail]
    # Times on another clock (an epoch offset): every bubble lies beyond the round's time limit.
    return [(x, y, t + rules.time_limit_ms + 1) for x, y, t in trail]


CHEATS: dict[str, Painter] = {
    painter.__name__: painter for painter in (off_object, periodic_bot, raster, replay, forged_fast)
}
