"""Each quality rule on synthetic bubbles: it fires on its kind of cheating and stays silent on honest trails."""

from __future__ import annotations

import numpy as np
import pytest

from devtools import cheats
from devtools.simulation import Rules, paint
from games.quality import RULES, RoundContext, Thresholds, path_similarity, run_rules

SETTINGS = {"bubble_interval_ms": 50, "bubble_max_step": 7, "time_limit_ms": 7000, "bubble_size": 21}
RULES_ = Rules()
DEFAULTS = Thresholds()
YY, XX = np.mgrid[:256, :256]
DISC = (XX - 128) ** 2 + (YY - 128) ** 2 < 45**2
SQUARE = (abs(XX - 90) < 35) & (abs(YY - 160) < 35)


def honest(seed: int, mask: np.ndarray = DISC) -> list[tuple[int, int, int]]:
    return paint(mask, RULES_, np.random.default_rng(seed))


def context(**kwargs: object) -> RoundContext:
    return RoundContext(settings=SETTINGS, **kwargs)


def consensus_of(mask: np.ndarray, seeds: range) -> np.ndarray:
    """A crude consensus map: honest players' bubble counts, blurred by a box."""
    counts = np.zeros((256, 256))
    for seed in seeds:
        for x, y, _ in honest(seed, mask):
            counts[max(0, y - 10) : y + 11, max(0, x - 10) : x + 11] += 1
    return counts / counts.max()


HONEST = [honest(seed, DISC if seed % 2 else SQUARE) for seed in range(40)]
CONSENSUS = consensus_of(DISC, range(100, 110))


@pytest.mark.parametrize("trail", HONEST[:40:3])
def test_every_rule_is_silent_on_honest_trails(trail: list[tuple[int, int, int]]) -> None:
    others = [(f"round {i}", other) for i, other in enumerate(HONEST) if other is not trail]
    mask = DISC if HONEST.index(trail) % 2 else SQUARE
    full = context(is_catch_trial=True, mask=mask, others=others, rounds_last_minute=6)
    assert run_rules(trail, full, DEFAULTS) == {}
    # Even cut short, as when the partner recognises the image early.
    assert run_rules(trail[:12], full, DEFAULTS) == {}


def test_honest_trails_agree_with_the_consensus() -> None:
    for trail in HONEST[1:20:2]:  # on the disc
        assert RULES["low_consensus"](trail, context(consensus=CONSENSUS, consensus_participants=10), DEFAULTS) is None


def test_too_fast_fires_on_forged_fast_uploads_only() -> None:
    trail = honest(1)
    forged = [(x, y, t * 2 // 5) for x, y, t in trail]
    score, reason = RULES["too_fast"](forged, context(), DEFAULTS)
    assert score >= 1 and "ms apart" in reason
    teleport = trail[:10] + [(x + 40, y, t) for x, y, t in trail[10:20]]
    assert RULES["too_fast"](teleport, context(), DEFAULTS)[0] == 1  # one step of 40 px
    assert RULES["too_fast"](trail, context(), DEFAULTS) is None


def test_periodic_timing_fires_on_an_exact_clock() -> None:
    bot = cheats.periodic_bot(DISC, RULES_, np.random.default_rng(3))
    score, reason = RULES["periodic_timing"](bot, context(), DEFAULTS)
    assert score == 1.0 and "exactly 50 ms" in reason
    assert RULES["periodic_timing"](bot[:8], context(), DEFAULTS) is None  # too few intervals to tell


def test_raster_pattern_fires_on_a_grid_sweep() -> None:
    sweep = cheats.raster(DISC, RULES_, np.random.default_rng(4))
    score, reason = RULES["raster_pattern"](sweep, context(), DEFAULTS)
    assert score > 0.8 and "axis-aligned" in reason
    diagonal = [(10 + 5 * i, 10 + 5 * i, 50 * i) for i in range(30)]
    assert RULES["raster_pattern"](diagonal, context(), DEFAULTS)[0] == 1.0


def test_replayed_path_fires_on_the_same_path_elsewhere_and_later() -> None:
    path = cheats.replay(None, RULES_, np.random.default_rng(5))
    shifted = [(x + 30, y - 20, t + 3) for x, y, t in path]
    others = [("round 7 of this participant", shifted), *[(f"round {i}", t) for i, t in enumerate(HONEST)]]
    score, reason = RULES["replayed_path"](path, context(others=others), DEFAULTS)
    assert score == 1.0 and "round 7 of this participant" in reason
    assert RULES["replayed_path"](path, context(others=others[1:]), DEFAULTS) is None
    assert path_similarity(path, path, length=40, tolerance=0) == 1.0


def test_out_of_range_fires_on_imported_data() -> None:
    trail = honest(6)
    assert RULES["out_of_range"](trail, context(), DEFAULTS) is None
    scaled = [(x * 2, y * 2, t * 2) for x, y, t in trail]
    score, reason = RULES["out_of_range"](scaled, context(), DEFAULTS)
    assert score > 10 and "outside the 256×256 image" in reason
    backwards = [*trail[:5], (trail[5][0], trail[5][1], 1), *trail[6:]]
    assert RULES["out_of_range"](backwards, context(), DEFAULTS)[0] == 1


def test_failed_catch_trial_fires_off_the_object_and_only_on_catch_trials() -> None:
    away = cheats.off_object(DISC, RULES_, np.random.default_rng(7))
    score, reason = RULES["failed_catch_trial"](away, context(is_catch_trial=True, mask=DISC), DEFAULTS)
    assert score > 0.6 and "catch trial" in reason
    assert RULES["failed_catch_trial"](away, context(is_catch_trial=False, mask=DISC), DEFAULTS) is None


def test_low_consensus_fires_off_the_consensus_once_the_map_has_enough_participants() -> None:
    away = cheats.off_object(DISC, RULES_, np.random.default_rng(8))
    score, reason = RULES["low_consensus"](away, context(consensus=CONSENSUS, consensus_participants=10), DEFAULTS)
    assert score < 1 and "consensus map of 10 participants" in reason
    assert RULES["low_consensus"](away, context(consensus=CONSENSUS, consensus_participants=3), DEFAULTS) is None
    assert RULES["low_consensus"](away, context(), DEFAULTS) is None


def test_too_many_rounds_fires_above_the_rate() -> None:
    assert RULES["too_many_rounds"]([], context(rounds_last_minute=20), DEFAULTS) is None
    assert RULES["too_many_rounds"]([], context(rounds_last_minute=25), DEFAULTS)[0] == 25


def test_thresholds_come_from_the_experiment() -> None:
    thresholds = Thresholds.from_overrides({"periodic_timing": "0.3", "too_many_rounds": 5, "no_such_rule": 1})
    assert thresholds.periodic_timing == 0.3 and thresholds.too_many_rounds == 5
    assert RULES["periodic_timing"](honest(9), context(), thresholds) is not None
    assert Thresholds.from_overrides(None) == DEFAULTS
