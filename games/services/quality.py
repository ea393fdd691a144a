"""Run the automatic quality rules (games.quality) on a scored round and store what fires as flags."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from PIL import Image as PILImage

from games.consensus import consensus_map
from games.models import Click, PlaySession, QualityFlag, Round
from games.quality import Bubble, RoundContext, Thresholds, run_rules

logger = logging.getLogger(__name__)


def check_round_quality(*, round_id: int) -> list[QualityFlag]:
    """Run every rule on a round; store each that fires as a flag (once per rule) and recount the session's flags."""
    round_ = Round.objects.select_related("image", "experiment").get(pk=round_id)
    return judge_round(round_, list(round_.clicks.order_by("seq").values_list("x", "y", "t_ms")))


def judge_round(round_: Round, bubbles: Sequence[Bubble]) -> list[QualityFlag]:
    """`check_round_quality` for a round already read, with its image and experiment, and all its bubbles in order.

    Scoring has both in hand when it stores a score, so the checks read neither again.
    """
    # One atomic block (a savepoint inside scoring's transaction): a failure here leaves the score intact.
    with transaction.atomic():
        thresholds = Thresholds.from_overrides(round_.experiment.quality_thresholds)
        findings = run_rules(list(bubbles), round_context(round_, thresholds), thresholds)
        stored = [
            QualityFlag.objects.get_or_create(
                round_id=round_.pk, rule=rule,
                defaults={"session_id": round_.session_id, "score": score, "reason": reason},
            )
            for rule, (score, reason) in findings.items()
        ]  # fmt: skip
        if any(created for _, created in stored):  # the session's count changes only with a new flag
            recount_session_flags(session_id=round_.session_id)
    if stored:
        logger.info("round %s flagged: %s", round_.pk, ", ".join(sorted(findings)))
    return [flag for flag, _ in stored]


def recount_session_flags(*, session_id: int) -> None:
    """Set PlaySession.flag_count to its number of flags, in one statement (rounds of a session score concurrently)."""
    count = QualityFlag.objects.filter(session_id=OuterRef("pk")).values("session_id").annotate(n=Count("pk"))
    PlaySession.objects.filter(pk=session_id).update(flag_count=Coalesce(Subquery(count.values("n")), Value(0)))


def round_context(round_: Round, thresholds: Thresholds) -> RoundContext:
    """What the rules need besides the bubbles: the catch trial's mask, the consensus map, recent paths, the pace."""
    consensus, participants = _consensus(round_)
    minute_ago = round_.started_at - timedelta(minutes=1)
    return RoundContext(
        settings=round_.settings,
        is_catch_trial=round_.is_catch_trial,
        mask=_mask(round_) if round_.is_catch_trial else None,
        consensus=consensus,
        consensus_participants=participants,
        others=recent_paths(round_, thresholds),
        # Per participant, not per session: a bot would simply open a new session.
        rounds_last_minute=Round.objects.filter(
            participant_id=round_.participant_id, started_at__gt=minute_ago, started_at__lte=round_.started_at
        ).count(),
    )


def _mask(round_: Round) -> np.ndarray | None:
    if not round_.image.mask:
        return None
    with round_.image.mask.open("rb") as file:
        return np.asarray(PILImage.open(file).convert("L")) > 127


def _consensus(round_: Round) -> tuple[np.ndarray | None, int]:
    """The image's consensus map in this experiment and its participants, or (None, 0) until it has one."""
    try:
        consensus = consensus_map(round_.experiment_id, round_.image_id)
    except (ValueError, OSError):  # a file being replaced by a rebuild: judge without it
        logger.warning("no consensus map for round %s", round_.pk, exc_info=True)
        return None, 0
    return (consensus.heatmap, consensus.participants) if consensus is not None else (None, 0)


def recent_paths(round_: Round, thresholds: Thresholds) -> list[tuple[str, list[Bubble]]]:
    """The first bubbles of recent other rounds of this participant, and of others on the same image."""
    recent = Round.objects.exclude(pk=round_.pk).exclude(bubble_count__lt=thresholds.replay_min_bubbles)
    limit = thresholds.replay_recent_rounds
    own = recent.filter(participant_id=round_.participant_id).order_by("-pk").values_list("pk", flat=True)[:limit]
    others = (
        recent.filter(image_id=round_.image_id)
        .exclude(participant_id=round_.participant_id)
        .order_by("-pk")
        .values_list("pk", flat=True)[:limit]
    )
    whose = {pk: "same participant" for pk in own} | {pk: "same image" for pk in others}
    paths: dict[int, list[Bubble]] = {pk: [] for pk in whose}
    rows = Click.objects.filter(round_id__in=list(whose), seq__lt=thresholds.replay_compare_bubbles)
    for round_id, x, y, t_ms in rows.order_by("round_id", "seq").values_list("round_id", "x", "y", "t_ms"):
        paths[round_id].append((x, y, t_ms))
    return [(f"round {pk} ({whose[pk]})", path) for pk, path in paths.items()]
