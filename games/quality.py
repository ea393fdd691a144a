"""Automatic quality rules: pure functions over a round's bubbles and what is known around it.

Design: docs/architecture.md, "Quality and moderation".

Each rule takes the round's bubbles `(x, y, t_ms)` in upload order, a `RoundContext` and the
`Thresholds`, and returns `(score, reason)` when it fires, else None. No database here:
games.services.quality gathers the context and stores what fires as QualityFlag rows. Flags are
for review, not verdicts: a flagged round is still scored and counts until a moderator acts.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from games.consensus import normalised_saliency
from model_server.canvas import IMAGE_SIZE  # the game's 256 x 256 coordinate space

Bubble = tuple[int, int, int]  # (x, y, t_ms)
Finding = tuple[float, str]  # (score, reason)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Defaults of every rule's threshold; an experiment's `quality_thresholds` overrides any of them by name."""

    too_fast: int = 1  # bubbles breaking the painting rules (interval − 2 ms, max step + 1 px): any is impossible
    periodic_timing: float = 0.9  # share of intervals equal to the commonest one; honest timers: ~0.4
    periodic_min_intervals: int = 9  # one query's worth of bubbles
    raster_pattern: float = 0.6  # share of steps in straight runs of identical steps; honest trails: < 0.35
    raster_min_run: int = 5
    raster_min_steps: int = 15
    replayed_path: float = 0.9  # share of relative positions matching another round's path
    replay_min_bubbles: int = 15
    replay_compare_bubbles: int = 40
    replay_tolerance_px: int = 3
    replay_recent_rounds: int = 50  # of the same participant, and of others on the same image
    out_of_range: int = 1  # bubbles outside the image, the time limit, or going back in time
    failed_catch_trial: float = 0.5  # share of bubbles off the known object (grown by catch_tolerance_px)
    catch_tolerance_px: int = 5
    catch_min_bubbles: int = 5
    low_consensus: float = 1.0  # normalised scanpath saliency below this; random places: 0, honest players: 2-4
    consensus_min_participants: int = 5
    consensus_min_bubbles: int = 5
    too_many_rounds: int = 20  # rounds a participant starts within one minute

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, object] | None) -> Thresholds:
        """Defaults overridden by `overrides` (by field name); unknown names are logged and ignored."""
        known = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        changes = {}
        for name, value in (overrides or {}).items():
            if name not in known:
                # A typo in the admin must not stop scoring: say so and keep the default.
                logger.warning("unknown quality threshold %r ignored", name)
                continue
            changes[name] = known[name](value)
        return dataclasses.replace(cls(), **changes)


@dataclass(frozen=True)
class RoundContext:
    """What the rules know beyond the bubbles: the round's rules, its image's mask and map, other paths."""

    settings: Mapping[str, int | float]  # the round's settings snapshot (bubble_interval_ms, ...)
    is_catch_trial: bool = False
    mask: np.ndarray | None = None  # bool (256, 256) object mask, for catch trials
    consensus: np.ndarray | None = None  # the image's heatmap once it has enough participants
    consensus_participants: int = 0
    others: Sequence[tuple[str, Sequence[Bubble]]] = field(default_factory=tuple)  # (label, bubbles)
    rounds_last_minute: int = 0


def _steps(bubbles: Sequence[Bubble]) -> np.ndarray:
    xy = np.asarray([b[:2] for b in bubbles], dtype=np.int64).reshape(-1, 2)
    return np.diff(xy, axis=0)


def too_fast(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """Bubbles closer in time or farther apart than the painting rules allow (imported or forged data)."""
    interval, max_step = context.settings["bubble_interval_ms"], context.settings["bubble_max_step"]
    if len(bubbles) < 2:
        return None
    gaps = np.diff([b[2] for b in bubbles])
    # The same slack as games.painting: timer rounding and pixel rounding of honest browsers.
    fast = int(np.sum(gaps < interval - 2))
    far = int(np.sum(np.hypot(*_steps(bubbles).T) > max_step + 1.0))
    limit = context.settings["time_limit_ms"] // interval + 1
    extra = max(0, len(bubbles) - limit)
    bad = fast + far + extra
    if bad < thresholds.too_fast:
        return None
    return float(bad), (
        f"{fast} bubbles under {interval - 2} ms apart, {far} steps over {max_step + 1} px, "
        f"{extra} bubbles beyond the {limit} a round holds (threshold {thresholds.too_fast})"
    )


def periodic_timing(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """Inter-bubble intervals that hardly vary: a bot's clock (browser timers fire a few ms late, unevenly)."""
    gaps = np.diff([b[2] for b in bubbles])
    if len(gaps) < thresholds.periodic_min_intervals:
        return None
    commonest, count = Counter(gaps.tolist()).most_common(1)[0]
    share = count / len(gaps)
    if share < thresholds.periodic_timing:
        return None
    return share, (
        f"{share:.0%} of {len(gaps)} intervals are exactly {commonest} ms (std {gaps.std():.2f} ms; "
        f"threshold {thresholds.periodic_timing:.0%})"
    )


def raster_pattern(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """Grid or straight-line sweeps: most steps inside long runs of the very same step vector."""
    steps = _steps(bubbles)
    steps = steps[np.any(steps != 0, axis=1)]
    if len(steps) < thresholds.raster_min_steps:
        return None
    # A hand's tremor and pixel rounding change an honest trail's step every few bubbles.
    in_runs, run = 0, 1
    for index in range(1, len(steps) + 1):
        if index < len(steps) and np.array_equal(steps[index], steps[index - 1]):
            run += 1
            continue
        if run >= thresholds.raster_min_run:
            in_runs += run
        run = 1
    share = in_runs / len(steps)
    if share < thresholds.raster_pattern:
        return None
    axis = float(np.mean((steps[:, 0] == 0) | (steps[:, 1] == 0)))
    return share, (
        f"{share:.0%} of {len(steps)} steps lie in straight runs of ≥ {thresholds.raster_min_run} identical steps, "
        f"{axis:.0%} axis-aligned (threshold {thresholds.raster_pattern:.0%})"
    )


def path_similarity(a: Sequence[Bubble], b: Sequence[Bubble], *, length: int, tolerance: int) -> float:
    """Share of the first `length` positions, relative to each path's start, within `tolerance` px of each other."""
    n = min(len(a), len(b), length)
    if n < 2:
        return 0.0
    pa = np.asarray([p[:2] for p in a[:n]], dtype=np.int64)
    pb = np.asarray([p[:2] for p in b[:n]], dtype=np.int64)
    # Relative to the start, so a path replayed somewhere else on the canvas still matches.
    close = np.max(np.abs((pa - pa[0]) - (pb - pb[0])), axis=1) <= tolerance
    return float(close[1:].mean())


def replayed_path(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """The same path as another recent round of this participant, or of anyone on this image."""
    if len(bubbles) < thresholds.replay_min_bubbles:
        return None
    best, label = 0.0, ""
    for other_label, other in context.others:
        if min(len(other), thresholds.replay_compare_bubbles) < thresholds.replay_min_bubbles:
            continue
        similarity = path_similarity(
            bubbles, other, length=thresholds.replay_compare_bubbles, tolerance=thresholds.replay_tolerance_px
        )
        if similarity > best:
            best, label = similarity, other_label
    if best < thresholds.replayed_path:
        return None
    return best, (
        f"{best:.0%} of the first {thresholds.replay_compare_bubbles} positions match {label} within "
        f"{thresholds.replay_tolerance_px} px (threshold {thresholds.replayed_path:.0%})"
    )


def out_of_range(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """Points outside the image, times outside the round, or time going backwards."""
    limit = context.settings["time_limit_ms"]
    outside = sum(1 for x, y, _ in bubbles if not (0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE))
    late = sum(1 for *_, t in bubbles if not 0 <= t <= limit)
    backwards = sum(1 for a, b in itertools.pairwise(bubbles) if b[2] < a[2])
    bad = outside + late + backwards
    if bad < thresholds.out_of_range:
        return None
    return float(bad), (
        f"{outside} bubbles outside the {IMAGE_SIZE}×{IMAGE_SIZE} image, {late} outside 0..{limit} ms, "
        f"{backwards} earlier than the bubble before (threshold {thresholds.out_of_range})"
    )


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask dilated by a square of `radius` px (an integral image; no SciPy needed)."""
    if radius <= 0:
        return mask.astype(bool)
    padded = np.pad(mask.astype(np.int64), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    side = 2 * radius + 1
    box = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    return box[: mask.shape[0], : mask.shape[1]] > 0


def _inside(bubbles: Sequence[Bubble]) -> list[Bubble]:
    return [b for b in bubbles if 0 <= b[0] < IMAGE_SIZE and 0 <= b[1] < IMAGE_SIZE]


def failed_catch_trial(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """On a catch trial, too many bubbles off its known object (a hand's aim gets a few px of tolerance)."""
    if not context.is_catch_trial or context.mask is None or len(bubbles) < thresholds.catch_min_bubbles:
        return None
    grown = _grow(np.asarray(context.mask, dtype=bool), thresholds.catch_tolerance_px)
    off = sum(1 for x, y, _ in bubbles if not (0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE) or not grown[y, x])
    share = off / len(bubbles)
    if share <= thresholds.failed_catch_trial:
        return None
    return share, (
        f"{share:.0%} of {len(bubbles)} bubbles off the catch trial's object (± {thresholds.catch_tolerance_px} px; "
        f"threshold {thresholds.failed_catch_trial:.0%})"
    )


def low_consensus(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """Bubbles where the image's consensus map is low: normalised scanpath saliency under the threshold."""
    inside = _inside(bubbles)
    if (
        context.consensus is None
        or context.consensus_participants < thresholds.consensus_min_participants
        or len(inside) < thresholds.consensus_min_bubbles
    ):
        return None
    nss = normalised_saliency(context.consensus, [b[0] for b in inside], [b[1] for b in inside])
    if nss is None or nss >= thresholds.low_consensus:  # None: a flat map says nothing
        return None
    return nss, (
        f"normalised saliency {nss:.2f} of {len(inside)} bubbles on the consensus map of "
        f"{context.consensus_participants} participants (threshold {thresholds.low_consensus:.2f})"
    )


def too_many_rounds(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> Finding | None:
    """More rounds started within a minute than a person plays (each round also needs looking and aiming)."""
    if context.rounds_last_minute <= thresholds.too_many_rounds:
        return None
    return float(context.rounds_last_minute), (
        f"{context.rounds_last_minute} rounds started within one minute (threshold {thresholds.too_many_rounds})"
    )


Rule = Callable[[Sequence[Bubble], RoundContext, Thresholds], Finding | None]
RULES: dict[str, Rule] = {
    rule.__name__: rule
    for rule in (
        too_fast, periodic_timing, raster_pattern, replayed_path, out_of_range, failed_catch_trial, low_consensus,
        too_many_rounds,
    )
}  # fmt: skip


def run_rules(bubbles: Sequence[Bubble], context: RoundContext, thresholds: Thresholds) -> dict[str, Finding]:
    """Every rule that fires on the round, by name."""
    found = {}
    for name, rule in RULES.items():
        finding = rule(bubbles, context, thresholds)
        if finding is not None:
            found[name] = (float(finding[0]) if math.isfinite(finding[0]) else 0.0, finding[1])
    return found
