"""How a simulated participant paints: a pointer touring the object, and the bubble trail it leaves.

Design: docs/architecture.md, "Simulated players and demo data".

Pure functions of a mask, the round's rules and a seeded generator; no database, no HTTP. The
trail is made exactly as the browser makes it (`static/games/round.js`): the first bubble where
the pointer goes down at t = 0, then one bubble each time the timer fires (never sooner than
`bubble_interval_ms`, often a few ms late), placed on the line towards the pointer at most
`bubble_max_step` px from the previous bubble, nothing while the pointer is lifted, nothing after
`time_limit_ms`. So every trail passes `games.painting.check_bubbles` by construction.

What makes it human-like: the pointer moves between waypoints on the object at a hand's speed
(faster than the trail can follow, so the trail lags and cuts corners), prefers the object's
interior and parts not yet revealed, pauses for a reaction time at each waypoint while choosing
the next, sometimes aims off the object, trembles, and now and then lifts off the canvas for a
few hundred ms. Browser timers fire a few ms late, and now and then much later (a busy frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model_server.canvas import IMAGE_SIZE  # the game's 256 x 256 coordinate space

Bubble = tuple[int, int, int]  # (x, y, t_ms), as uploaded
Point = tuple[float, float]

MIN_MASK_PIXELS = 30  # a smaller "object" is noise in the mask: paint as if there were none


@dataclass(frozen=True)
class Rules:
    """The painting rules of a round (the `settings` snapshot of docs/game-api.md)."""

    interval_ms: int = 50
    max_step: int = 7
    time_limit_ms: int = 7000
    bubble_size: int = 21

    @classmethod
    def from_settings(cls, settings: dict) -> Rules:
        """Rules from a RoundState's `settings`."""
        return cls(
            interval_ms=int(settings["bubble_interval_ms"]),
            max_step=int(settings["bubble_max_step"]),
            time_limit_ms=int(settings["time_limit_ms"]),
            bubble_size=int(settings["bubble_size"]),
        )


@dataclass(frozen=True)
class Hand:
    """How one simulated person moves the pointer; every range is drawn from uniformly."""

    speed_px_per_ms: tuple[float, float] = (0.12, 0.35)  # 120-350 px/s, faster than the 140 px/s trail
    tremor_px: float = 1.5  # jitter of the pointer around where the hand means it to be
    aim_px: float = 4.0  # how far a waypoint lands from the point aimed at
    off_object: float = 0.05  # share of waypoints aimed well off the object (σ 14 px)
    reaction_ms: tuple[int, int] = (80, 250)  # at a waypoint, the eye picks the next part before the hand moves
    lift: float = 0.04  # chance, at each waypoint, of lifting the pointer
    lift_ms: tuple[int, int] = (120, 450)
    late_ms: float = 2.0  # mean lateness of a timer (exponential): setTimeout never fires early
    hitch: float = 0.03  # chance of a frame hitch (garbage collection, a busy main thread)
    hitch_ms: tuple[int, int] = (10, 40)


def js_round(value: float) -> int:
    """Round like JavaScript's Math.round (halves go up), as the browser does."""
    return math.floor(value + 0.5)


def step_towards(previous: tuple[int, int], target: Point, max_step: float) -> tuple[int, int] | None:
    """The integer point at most `max_step` px from `previous` towards `target` (the browser's stepTowards).

    None when the trail already sits on the target's pixel.
    """
    dx, dy = target[0] - previous[0], target[1] - previous[1]
    distance = math.hypot(dx, dy)
    if distance < 0.5:
        return None
    step = min(distance, max_step)
    # Rounding to pixels can lengthen a step by up to ~0.7 px: shorten it until it fits.
    while step > 0:
        x = js_round(previous[0] + dx * step / distance)
        y = js_round(previous[1] + dy * step / distance)
        moved = math.hypot(x - previous[0], y - previous[1])
        if moved <= max_step:
            return None if moved == 0 else (x, y)
        step -= 0.25
    return None


def object_pixels(mask: np.ndarray | None) -> np.ndarray | None:
    """The (x, y) pixels of a mask's object, or None when there is no usable object."""
    if mask is None:
        return None
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_MASK_PIXELS:
        return None
    return np.stack([xs, ys], axis=1).astype(np.float64)


def _interior(mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """Share of object pixels in the (2r+1)² box around each pixel: 1 deep inside, ~0.5 on edges."""
    padded = np.pad(mask.astype(np.float64), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    side = 2 * radius + 1
    box = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    return box[: mask.shape[0], : mask.shape[1]] / side**2


class _Waypoints:
    """Chooses where the hand goes next: inside the object, unrevealed parts first, a stroke away."""

    CANDIDATES = 48

    def __init__(self, mask: np.ndarray | None, rules: Rules, hand: Hand, rng: np.random.Generator) -> None:
        self.rng, self.hand = rng, hand
        self.pixels = object_pixels(mask)
        if self.pixels is None:
            # No object known: people look at the middle of a picture first (centre bias).
            self.pixels = np.clip(rng.normal(IMAGE_SIZE / 2, IMAGE_SIZE / 6, (4000, 2)), 0, IMAGE_SIZE - 1)
            self.interior = np.ones(len(self.pixels))
        else:
            depth = _interior(np.asarray(mask, dtype=bool))
            self.interior = depth[self.pixels[:, 1].astype(int), self.pixels[:, 0].astype(int)]
        self.revealed = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        self.half = rules.bubble_size // 2

    def reveal(self, x: int, y: int) -> None:
        """Remember the square a bubble uncovered, so later waypoints prefer what is still hidden."""
        self.revealed[max(0, y - self.half) : y + self.half + 1, max(0, x - self.half) : x + self.half + 1] = True

    def first(self) -> Point:
        """Where the pointer goes down: somewhere well inside the object."""
        picks = self.rng.integers(0, len(self.pixels), self.CANDIDATES)
        weights = self.interior[picks] ** 4 + 1e-6
        choice = picks[self.rng.choice(len(picks), p=weights / weights.sum())]
        return self._aim(self.pixels[choice], self.hand.aim_px / 2)

    def next(self, position: np.ndarray) -> Point:
        """The next waypoint from `position`: a weighted draw among random object pixels."""
        picks = self.rng.integers(0, len(self.pixels), self.CANDIDATES)
        points = self.pixels[picks]
        distance = np.hypot(*(points - position).T)
        hidden = ~self.revealed[points[:, 1].astype(int), points[:, 0].astype(int)]
        # Strokes of 10-70 px, mostly over unrevealed parts and away from the object's edge.
        stroke = np.exp(-(((distance - 35.0) / 30.0) ** 2))
        weights = (0.15 + hidden) * (0.1 + self.interior[picks] ** 2) * (0.05 + stroke)
        point = points[self.rng.choice(len(picks), p=weights / weights.sum())]
        off = self.rng.random() < self.hand.off_object
        return self._aim(point, 14.0 if off else self.hand.aim_px)

    def _aim(self, point: np.ndarray, spread: float) -> Point:
        x, y = np.clip(point + self.rng.normal(0.0, spread, 2), 0, IMAGE_SIZE - 1)
        return float(x), float(y)


class _Pointer:
    """The pointer over time: moves from waypoint to waypoint, pauses to react, sometimes lifts."""

    def __init__(self, waypoints: _Waypoints, hand: Hand, rng: np.random.Generator) -> None:
        self.waypoints, self.hand, self.rng = waypoints, hand, rng
        self.speed = float(rng.uniform(*hand.speed_px_per_ms))
        self.position = np.array(waypoints.first())
        self.goal = np.array(waypoints.next(self.position))
        self.clock = 0.0  # ms up to which the motion has been simulated
        self.still_until = 0.0  # reacting at a waypoint
        self.up_until = 0.0  # lifted off the canvas

    def at(self, t_ms: float) -> tuple[Point, bool]:
        """Where the pointer is at `t_ms` (with tremor) and whether it is down; t never goes back."""
        while self.clock < t_ms:
            if self.clock < self.still_until:
                self.clock = min(t_ms, self.still_until)
                continue
            offset = self.goal - self.position
            distance = float(np.hypot(*offset))
            reach = (t_ms - self.clock) * self.speed
            if reach < distance:
                self.position = self.position + offset * (reach / distance)
                self.clock = t_ms
            else:
                self.position = self.goal
                self.clock += distance / self.speed
                self._arrive()
        x, y = np.clip(self.position + self.rng.normal(0.0, self.hand.tremor_px, 2), 0, IMAGE_SIZE - 1)
        return (float(x), float(y)), t_ms >= self.up_until

    def _arrive(self) -> None:
        pause = float(self.rng.uniform(*self.hand.reaction_ms))
        self.still_until = self.clock + pause
        if self.rng.random() < self.hand.lift:
            self.up_until = self.clock + pause + float(self.rng.uniform(*self.hand.lift_ms))
        self.goal = np.array(self.waypoints.next(self.position))

    @property
    def start(self) -> tuple[int, int]:
        """The pixel where the pointer first goes down."""
        return js_round(self.position[0]), js_round(self.position[1])


def _timer_lateness(hand: Hand, rng: np.random.Generator) -> int:
    """How many ms after it is due a browser timer fires: a little, and now and then a lot."""
    late = int(rng.exponential(hand.late_ms))
    if rng.random() < hand.hitch:
        late += int(rng.integers(hand.hitch_ms[0], hand.hitch_ms[1] + 1))
    return late


def paint(mask: np.ndarray | None, rules: Rules, rng: np.random.Generator, hand: Hand | None = None) -> list[Bubble]:
    """The whole trail one player would paint in a round if nothing stopped it before the time limit.

    `mask` is a (256, 256) array, true on the object (None, or an empty mask, paints around the
    centre). The caller cuts the trail short when the partner recognises the image.
    """
    hand = hand or Hand()
    waypoints = _Waypoints(mask, rules, hand, rng)
    pointer = _Pointer(waypoints, hand, rng)
    x, y = pointer.start
    bubbles: list[Bubble] = [(x, y, 0)]
    waypoints.reveal(x, y)
    # The browser's timer: due one interval after the last bubble, firing a little late; a tick
    # that finds the pointer lifted waits for it to come down, one that finds the trail already
    # on the pointer's pixel retries on the next (clamped, ~4 ms) timeout.
    t_ms = rules.interval_ms + _timer_lateness(hand, rng)
    while t_ms <= rules.time_limit_ms:
        target, down = pointer.at(t_ms)
        if not down:
            t_ms = max(t_ms, math.ceil(pointer.up_until)) + _timer_lateness(hand, rng)
            continue
        step = step_towards(bubbles[-1][:2], target, rules.max_step)
        if step is None:
            t_ms += 4
            continue
        bubbles.append((step[0], step[1], t_ms))
        waypoints.reveal(*step)
        t_ms += rules.interval_ms + _timer_lateness(hand, rng)
    return bubbles


def until(bubbles: list[Bubble], t_ms: float) -> int:
    """How many bubbles of a trail were painted by `t_ms` (the trail goes on while a guess is pending)."""
    return sum(1 for bubble in bubbles if bubble[2] <= t_ms)
