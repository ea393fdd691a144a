"""A small played experiment for the export tests: valid, invalidated, skipped, banned and unscored rounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from games.models import Click, Experiment, Image, Participant, PartnerModelVersion, PlaySession, Round
from games.tests.factories import (
    CategoryFactory,
    ExperimentFactory,
    ImageFactory,
    ParticipantFactory,
    PartnerModelVersionFactory,
    PlaySessionFactory,
    RoundFactory,
)
from maps.services import build_click_map

PANEL_ID = "PROLIFIC-5f3a9c2e71b4"  # must never appear in an export
ADDRESS_HASH = "ADDRESS-HASH-e4c19d7b"
USER_AGENT = "SecretBrowser/9.9 (panel-device-7781)"
DAY_ONE = datetime(2024, 3, 1, 10, tzinfo=UTC)
DAY_TWO = datetime(2024, 3, 2, 10, tzinfo=UTC)


@dataclass
class Played:
    """What `play_experiment` made, for assertions."""

    experiment: Experiment
    images: list[Image]
    sessions: list[PlaySession]
    version: PartnerModelVersion
    valid_rounds: int = 10  # 5 participants × 2 images
    all_rounds: int = 14  # + invalidated, skipped, banned, unscored
    invalidated_rounds: int = 2  # invalidated + banned participant


def add_round(session: PlaySession, image: Image, when: datetime, *, version: PartnerModelVersion | None,
              clicks: int = 4, **fields: object) -> Round:  # fmt: skip
    """A submitted round at `when` with `clicks` bubbles; scored with `version` unless that is None."""
    state = {"status": Round.Status.SUBMITTED, "outcome": Round.Outcome.WRONG}
    if version is not None:
        state = {"status": Round.Status.SCORED, "outcome": Round.Outcome.CORRECT, "points": 40 + clicks,
                 "partner_version": version, "scored_at": timezone.now()}  # fmt: skip
    later = timezone.now() + timedelta(hours=1)  # a placeholder after auto_now_add's started_at
    round_ = RoundFactory(session=session, image=image, submitted_at=later, bubble_count=clicks, **(state | fields))
    # started_at is auto_now_add: move both times together, so the round is submitted after it started.
    Round.objects.filter(pk=round_.pk).update(started_at=when - timedelta(seconds=10), submitted_at=when)
    Click.objects.bulk_create(
        Click(round=round_, seq=seq, x=(image.pk * 37 + seq * 11) % 256, y=(session.pk * 53 + seq * 7) % 256,
              t_ms=50 * seq)
        for seq in range(clicks)
    )  # fmt: skip
    round_.refresh_from_db()
    return round_


def play_experiment() -> Played:
    """Five participants (one from Prolific) play two images; then the rounds that must not count."""
    experiment = ExperimentFactory()
    version = PartnerModelVersionFactory(partner=experiment.partner)
    images = [
        ImageFactory(image_set=experiment.image_set, category=CategoryFactory(name=name), name=f"{name}_01.JPEG")
        for name in ("tabby_cat", "beagle")
    ]
    participants = [ParticipantFactory() for _ in range(4)]
    participants.append(ParticipantFactory(source=Participant.Source.PROLIFIC, prolific_pid=PANEL_ID))
    sessions = [
        PlaySessionFactory(participant=p, experiment=experiment, address_hash=ADDRESS_HASH, user_agent=USER_AGENT)
        for p in participants
    ]
    for number, session in enumerate(sessions):
        add_round(session, images[0], DAY_ONE + timedelta(minutes=number), version=version, clicks=3 + number)
        add_round(session, images[1], DAY_TWO + timedelta(minutes=number), version=version, clicks=4)
    add_round(sessions[0], images[0], DAY_TWO, version=version, invalidated_at=timezone.now())
    add_round(sessions[1], images[1], DAY_TWO, version=version, outcome=Round.Outcome.SKIPPED, points=0)
    add_round(sessions[2], images[1], DAY_TWO, version=None)
    banned = ParticipantFactory(ban_state=Participant.BanState.SHADOW, banned_at=timezone.now())
    add_round(PlaySessionFactory(participant=banned, experiment=experiment), images[0], DAY_ONE, version=version)
    for image in images:
        build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    return Played(experiment=experiment, images=images, sessions=sessions, version=version)
