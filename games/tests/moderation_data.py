"""Test data for moderation: staff in each role, and scored rounds with bubbles, without a partner."""

from __future__ import annotations

import importlib
from datetime import timedelta

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.utils import timezone

from games.models import Click, Image, PlaySession, QualityFlag, Round
from games.services.scoring import refresh_image_counts, refresh_participant_score
from games.tests.factories import PartnerModelVersionFactory, RoundFactory
from games.tests.http_player import painted


def ensure_roles() -> None:
    """Recreate the roles migration's groups: transactional tests flush everything migrations wrote."""
    importlib.import_module("games.migrations.0002_roles").create_roles(django_apps, None)


def staff_in(group: str, username: str | None = None) -> User:
    """A staff user (with a password "pw") in one of the roles the roles migration creates."""
    ensure_roles()
    user = User.objects.create_user(username or group, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def scored_round(*, session: PlaySession, image: Image | None = None, points: int = 50, clicks: int = 30) -> Round:
    """A round as the scorer leaves it, with `clicks` painted bubbles, counts and score refreshed."""
    now = timezone.now() + timedelta(seconds=1)  # started_at is stamped at insert, just before
    extra = {"image": image} if image is not None else {}
    round_ = RoundFactory(
        session=session, status=Round.Status.SCORED, outcome=Round.Outcome.CORRECT, client_outcome="correct",
        points=points, partner_version=PartnerModelVersionFactory(partner=session.experiment.partner),
        submitted_at=now, scored_at=now, bubble_count=clicks, recognised_at_ms=clicks * 50, **extra,
    )  # fmt: skip
    Click.objects.bulk_create(
        [Click(round=round_, seq=i, x=x, y=y, t_ms=t) for i, (x, y, t) in enumerate(painted(clicks))]
    )
    refresh_image_counts(image_id=round_.image_id)
    refresh_participant_score(participant_id=round_.participant_id)
    return round_


def flag(session: PlaySession, round_: Round | None = None, rule: str = "periodic_timing") -> QualityFlag:
    """A quality flag as the automatic rules would raise it, counted on its session."""
    made = QualityFlag.objects.create(session=session, round=round_, rule=rule, score=0.97, reason="timing CV 0.01")
    PlaySession.objects.filter(pk=session.pk).update(flag_count=session.flags.count())
    return made
