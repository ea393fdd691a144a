"""The simulated player's painting: the browser's painting rule always holds, the trail follows the object."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from devtools.simulation import Rules, paint, step_towards, until
from games.painting import check_bubbles, max_bubbles

SETTINGS = {"bubble_interval_ms": 50, "bubble_max_step": 7, "time_limit_ms": 7000, "bubble_size": 21}
RULES = Rules.from_settings(SETTINGS)


def random_mask(seed: int) -> np.ndarray:
    """A blob of one to four overlapping random ellipses (5-25 % of the image, like the demo's objects)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:256, 0:256]
    mask = np.zeros((256, 256), dtype=bool)
    centre = rng.uniform(60, 196, 2)
    for _ in range(rng.integers(1, 5)):
        cx, cy = centre + rng.normal(0, 25, 2)
        a, b = rng.uniform(8, 55, 2)
        angle = rng.uniform(0, math.pi)
        u = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
        v = -(xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask


def near(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask grown by `radius` px (a square neighbourhood)."""
    grown = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            grown |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return grown


@pytest.mark.parametrize("seed", range(25))
def test_every_trail_obeys_the_painting_rule(seed: int) -> None:
    mask = random_mask(seed)
    trail = paint(mask, RULES, np.random.default_rng(seed))
    check_bubbles(trail, previous=None, stored=0, settings=SETTINGS)  # the server's own check
    assert trail[0][2] == 0 and trail[-1][2] <= 7000 and len(trail) <= max_bubbles(SETTINGS)
    for (x0, y0, t0), (x1, y1, t1) in itertools.pairwise(trail):
        assert t1 - t0 >= 50, "a browser timer never fires early"
        assert 0 < math.hypot(x1 - x0, y1 - y0) <= 7, "at most bubble_max_step, without the server's slack"
    assert len(trail) >= 80, "a player who is not stopped paints for most of the 7 s"


def test_trails_stay_mostly_on_the_object() -> None:
    on_object, near_object = [], []
    for seed in range(40):
        mask = random_mask(seed)
        trail = paint(mask, RULES, np.random.default_rng(seed))
        grown = near(mask, 5)
        on_object.append(np.mean([mask[y, x] for x, y, _ in trail]))
        near_object.append(np.mean([grown[y, x] for x, y, _ in trail]))
    assert np.mean(on_object) >= 0.85
    assert min(near_object) >= 0.6, "even on a thin object the trail keeps close to it"


def test_the_trail_covers_the_object_rather_than_scrubbing_one_spot() -> None:
    mask = random_mask(3)
    trail = paint(mask, RULES, np.random.default_rng(3))
    revealed = np.zeros_like(mask)
    for x, y, _ in trail:
        revealed[max(0, y - 10) : y + 11, max(0, x - 10) : x + 11] = True
    assert (revealed & mask).sum() / mask.sum() >= 0.5


def test_the_same_seed_paints_the_same_trail() -> None:
    mask = random_mask(7)
    assert paint(mask, RULES, np.random.default_rng(11)) == paint(mask, RULES, np.random.default_rng(11))
    assert paint(mask, RULES, np.random.default_rng(11)) != paint(mask, RULES, np.random.default_rng(12))


@pytest.mark.parametrize("mask", [None, np.zeros((256, 256), dtype=bool)], ids=["no mask", "empty mask"])
def test_without_an_object_it_paints_around_the_centre(mask: np.ndarray | None) -> None:
    trail = paint(mask, RULES, np.random.default_rng(0))
    check_bubbles(trail, previous=None, stored=0, settings=SETTINGS)
    xs, ys = np.array([(x, y) for x, y, _ in trail]).T
    assert 48 < xs.mean() < 208 and 48 < ys.mean() < 208


def test_other_rules_are_followed_too() -> None:
    settings = {"bubble_interval_ms": 30, "bubble_max_step": 4, "time_limit_ms": 3000, "bubble_size": 15}
    trail = paint(random_mask(1), Rules.from_settings(settings), np.random.default_rng(1))
    check_bubbles(trail, previous=None, stored=0, settings=settings)
    assert trail[-1][2] <= 3000 and all(t1 - t0 >= 30 for (_, _, t0), (_, _, t1) in itertools.pairwise(trail))


def test_step_towards_is_the_browsers_step() -> None:
    assert step_towards((10, 10), (100, 10), 7) == (17, 10)
    assert step_towards((10, 10), (13, 14), 7) == (13, 14)  # within reach: onto the pointer
    assert step_towards((10, 10), (10.3, 9.8), 7) is None  # already on the pointer's pixel
    x, y = step_towards((0, 0), (5, 5), 7)  # a 7.07 px diagonal, shortened until it fits
    assert math.hypot(x, y) <= 7
    assert step_towards((0, 0), (2.5, 0), 7) == (3, 0)  # halves round up, like Math.round


def test_until_counts_what_was_painted_by_then() -> None:
    trail = [(0, 0, 0), (1, 0, 50), (2, 0, 103)]
    assert [until(trail, t) for t in (0, 49, 50, 102.9, 103, 9999)] == [1, 1, 2, 2, 3, 3]
