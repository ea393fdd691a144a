"""Authoritative scoring: replay a round's stored bubbles against the partner.

Design: docs/architecture.md, "The path of a click".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from games.models import Image, Participant, PartnerGuess, Round
from games.painting import points_for
from games.partner import partner_classes, record_version, scoring_client
from games.recognition import is_recognised, recognition_floor
from games.services import remembered_guesses
from games.services.quality import check_round_quality, judge_round
from games.services.rounds import enqueue_scoring
from games.signals import announce_round_counted
from model_server.client import Guess, GuessItem
from model_server.seeds import noise_seed

logger = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(seconds=30)  # younger rounds are probably still in their first task


def score_round(*, round_id: int) -> Round:
    """Score a submitted round from its stored bubbles; a round already scored is left alone.

    Takes the partner's answer at every query point (each `query_every` bubbles): the ones its live
    guesses were given, remembered, and the rest from the partner in one batch (`_answers`); finds
    the first point where the target is in the top-k, and gives points from the stored timestamp of
    that bubble. The browser's own claim is never used. Raises PartnerUnavailable when the model
    server cannot answer, leaving the round submitted for a retry.
    """
    round_ = Round.objects.select_related("image__category", "experiment__partner").get(pk=round_id)
    if round_.status != Round.Status.SUBMITTED:
        return round_
    rules = round_.settings
    clicks = list(round_.clicks.order_by("seq").values_list("x", "y", "t_ms"))
    every, top_k = rules["query_every"], rules["top_k"]
    items = [
        GuessItem(round_.image.crop.name, [(x, y) for x, y, _ in clicks[: (q + 1) * every]], noise_seed(round_.pk, q))
        for q in range(len(clicks) // every)
    ]
    partner, queries = round_.experiment.partner.name, range(len(items))
    remembered = remembered_guesses.recall(round_, queries) if items else {}
    with scoring_client() as client:

        def ask(which: Sequence[int]) -> list[Guess]:
            # "bulk": the model server batches participants' waiting live guesses before re-scoring.
            return client.guess(partner, [items[q] for q in which], top_k=top_k, bubble_size=rules["bubble_size"],
                                priority="bulk")  # fmt: skip

        guesses = _answers(queries, remembered, ask)
        version = guesses[0].model_version if guesses else client.metadata(partner)["active_version"]
    floor = recognition_floor(rules, len(partner_classes(partner))) if guesses else 0.0
    recognised_at = _first_recognised(guesses, round_.image.category.name, top_k, floor)
    recognised_at_ms = clicks[(recognised_at + 1) * every - 1][2] if recognised_at is not None else None
    scored = _record_score(round_, guesses, version, recognised_at, recognised_at_ms, floor, bubbles=clicks)
    if remembered:
        remembered_guesses.forget(round_, queries)
    return scored


def _answers(
    queries: Sequence[int], remembered: dict[int, Guess], ask: Callable[[Sequence[int]], list[Guess]]
) -> list[Guess]:
    """The partner's answer at every query point, all from one model version.

    The live guesses' answers are used where they were remembered, when one version gave them all,
    and the partner is asked (`ask`, one request) only for the other points. When their versions
    differ, or the partner now answers with another one (a version went live during the round),
    it is asked for every point again, so that a round is scored by one version.
    """
    versions = {guess.model_version for guess in remembered.values()}
    if len(versions) == 1:
        missing = [q for q in queries if q not in remembered]
        fresh = dict(zip(missing, ask(missing), strict=True)) if missing else {}
        if {guess.model_version for guess in fresh.values()} <= versions:
            return [remembered[q] if q in remembered else fresh[q] for q in queries]
        logger.info("the partner's version changed during the round: asking again at every query point")
    return ask(queries)


def _first_recognised(guesses: list[Guess], target: str, top_k: int, floor: float) -> int | None:
    return next(
        (
            q
            for q, g in enumerate(guesses)
            if is_recognised(g.classes, g.probabilities, target, top_k=top_k, floor=floor)
        ),
        None,
    )


@transaction.atomic
def _record_score(
    round_: Round,
    guesses: list[Guess],
    version: str,
    recognised_at: int | None,
    recognised_at_ms: int | None,
    floor: float = 0.0,
    *,
    bubbles: Sequence[tuple[int, int, int]] | None = None,
) -> Round:
    """Store the score of `round_` (read with its image and experiment), once; `bubbles`: all its stored bubbles
    in order, when the caller read them (the quality checks then do not)."""
    locked = Round.objects.select_for_update().get(pk=round_.pk)
    if locked.status != Round.Status.SUBMITTED:  # a concurrent run of the same task finished first
        return locked
    partner_version = record_version(partner=round_.experiment.partner, version=version)
    target, every = round_.image.category.name, round_.settings["query_every"]
    PartnerGuess.objects.bulk_create(
        [
            PartnerGuess(
                round=locked, partner_version=partner_version, query_index=q, bubble_count=(q + 1) * every,
                classes=guess.classes, probabilities=[round(p, 6) for p in guess.probabilities],
                target_rank=guess.classes.index(target) if target in guess.classes else None,
                is_correct=is_recognised(guess.classes, guess.probabilities, target,
                                         top_k=round_.settings["top_k"], floor=floor),
            )
            for q, guess in enumerate(guesses)
        ],
        ignore_conflicts=True,
    )  # fmt: skip
    skipped = locked.client_outcome == Round.Outcome.SKIPPED
    if skipped:
        locked.outcome = Round.Outcome.SKIPPED
    else:
        locked.outcome = Round.Outcome.CORRECT if recognised_at is not None else Round.Outcome.WRONG
    locked.recognised_at_query = recognised_at
    locked.recognised_at_ms = recognised_at_ms
    locked.points = 0 if skipped else points_for(recognised_at_ms=recognised_at_ms, settings=round_.settings)
    locked.partner_version = partner_version
    locked.status = Round.Status.SCORED
    locked.scored_at = timezone.now()
    locked.scoring_attempts += 1
    locked.save()
    refresh_image_counts(image_id=locked.image_id)
    refresh_participant_score(participant_id=locked.participant_id)
    try:
        # Flags are for review: the round is scored all the same.
        judge_round(round_, bubbles) if bubbles is not None else check_round_quality(round_id=locked.pk)
    except Exception:  # a failing rule must never stop scoring; its savepoint has been rolled back
        logger.exception("quality checks failed on round %s", locked.pk)
    # A round that counts feeds its image's map (maps listens), once committed.
    if Round.objects.counting().filter(pk=locked.pk).exists():
        announce_round_counted(experiment_id=locked.experiment_id, image_id=locked.image_id)
    logger.info("scored round %s: %s, %s points", locked.pk, locked.outcome, locked.points)
    return locked


def refresh_image_counts(*, image_id: int) -> None:
    """Recompute an image's number of valid rounds (what the sampler orders by), in one statement."""
    valid = Round.objects.counting().filter(image_id=OuterRef("pk")).values("image_id").annotate(n=Count("pk"))
    Image.objects.filter(pk=image_id).update(valid_rounds=Coalesce(Subquery(valid.values("n")), 0))


def refresh_participant_score(*, participant_id: int) -> None:
    """Recompute a participant's total and best session from the rounds that count, in one statement."""
    rounds = Round.objects.counting_for_player().filter(participant_id=OuterRef("pk"))
    total = rounds.values("participant_id").annotate(total=Sum("points")).values("total")
    best = rounds.values("session_id").annotate(total=Sum("points")).order_by("-total").values("total")[:1]
    Participant.objects.filter(pk=participant_id).update(
        score=Coalesce(Subquery(total), 0), high_score=Coalesce(Subquery(best), 0)
    )


def enqueue_unscored_rounds(*, older_than: timedelta = SWEEP_AFTER) -> int:
    """Re-enqueue rounds left submitted but unscored (model server or broker was down)."""
    cutoff = timezone.now() - older_than
    ids = list(
        Round.objects.filter(status=Round.Status.SUBMITTED, submitted_at__lt=cutoff)
        .order_by("submitted_at")
        .values_list("pk", flat=True)[:1000]
    )
    for round_id in ids:
        enqueue_scoring(round_id)
    if ids:
        logger.info("sweep re-enqueued %d unscored rounds", len(ids))
    return len(ids)
