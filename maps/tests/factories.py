"""Helpers that create scored rounds with their bubbles, as the game would leave them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from games.models import Click, Experiment, Image, Participant, PartnerModelVersion, PlaySession, Round
from games.tests.factories import ParticipantFactory, PlaySessionFactory, RoundFactory


def scored_round(
    *,
    experiment: Experiment,
    image: Image,
    clicks: Sequence[tuple[int, int]],
    participant: Participant | None = None,
    session: PlaySession | None = None,
    submitted_at: datetime | None = None,
    outcome: str = Round.Outcome.CORRECT,
) -> Round:
    """A scored round of `image` with these bubble centres, stored as `games` stores them."""
    if session is None:
        session = PlaySessionFactory(participant=participant or ParticipantFactory(), experiment=experiment)
    version, _ = PartnerModelVersion.objects.get_or_create(partner=experiment.partner, version="test")
    # After started_at (now), in creation order unless the test says otherwise.
    submitted_at = submitted_at or timezone.now() + timedelta(hours=1, seconds=Round.objects.count())
    round_ = RoundFactory(
        session=session, image=image, status=Round.Status.SCORED, outcome=outcome, points=10,
        partner_version=version, submitted_at=submitted_at, scored_at=submitted_at, bubble_count=len(clicks),
    )  # fmt: skip
    Click.objects.bulk_create(
        Click(round=round_, seq=seq, x=x, y=y, t_ms=50 * seq) for seq, (x, y) in enumerate(clicks)
    )
    return round_
