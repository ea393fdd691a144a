"""The painting rules accept what a browser paints and refuse what it cannot."""

from __future__ import annotations

import pytest

from games.painting import PaintingRuleBroken, check_bubbles, max_bubbles, points_for
from games.tests.http_player import painted

RULES = {"bubble_interval_ms": 50, "bubble_max_step": 7, "time_limit_ms": 7000, "max_points": 100}


def test_a_whole_round_of_honest_painting_passes() -> None:
    check_bubbles([tuple(b) for b in painted(141)], previous=None, stored=0, settings=RULES)


def test_a_round_holds_at_most_one_bubble_per_interval() -> None:
    assert max_bubbles(RULES) == 141
    with pytest.raises(PaintingRuleBroken, match="too many bubbles"):
        check_bubbles([(1, 1, 0)], previous=None, stored=141, settings=RULES)


@pytest.mark.parametrize(
    "bubbles, rule",
    [
        ([(10, 10, 0), (12, 10, 30)], "one every 50 ms"),
        ([(10, 10, 0), (19, 10, 50)], "at most 7 px"),
        ([(10, 10, 100), (10, 12, 40)], "earlier than"),
        ([(10, 10, 7050)], "outside 0..7000"),
        ([(256, 10, 0)], "outside the 256×256 image"),
    ],
)
def test_it_names_the_rule_a_forged_batch_breaks(bubbles: list, rule: str) -> None:
    with pytest.raises(PaintingRuleBroken, match=rule):
        check_bubbles(bubbles, previous=None, stored=0, settings=RULES)


def test_the_rules_continue_across_batches() -> None:
    with pytest.raises(PaintingRuleBroken, match="one every 50 ms"):
        check_bubbles([(10, 10, 120)], previous=(10, 10, 100), stored=1, settings=RULES)


def test_points_fall_linearly_with_the_time_to_recognition() -> None:
    assert points_for(recognised_at_ms=0, settings=RULES) == 100
    assert points_for(recognised_at_ms=3500, settings=RULES) == 50
    assert points_for(recognised_at_ms=7000, settings=RULES) == 0
    assert points_for(recognised_at_ms=None, settings=RULES) == 0
