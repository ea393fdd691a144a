"""The rules of which rounds count, on the QuerySet itself (no HTTP): science, the player's own score, completion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from games.models import Participant, Round
from games.tests.factories import ExperimentFactory, PartnerModelVersionFactory, PlaySessionFactory, RoundFactory

pytestmark = pytest.mark.django_db


def scored(session, **fields) -> Round:
    later = timezone.now() + timedelta(seconds=1)
    version = PartnerModelVersionFactory(partner=session.experiment.partner)
    values = {"status": "scored", "outcome": "correct", "points": 50, "partner_version": version,
              "submitted_at": later, "scored_at": later, "bubble_count": 20, **fields}  # fmt: skip
    return RoundFactory(session=session, **values)


def test_a_scored_valid_round_counts_for_science_and_for_the_player() -> None:
    round_ = scored(PlaySessionFactory())
    assert list(Round.objects.counting()) == [round_] == list(Round.objects.counting_for_player())


def test_a_pilot_round_counts_for_the_player_but_never_for_science() -> None:
    round_ = scored(PlaySessionFactory(is_pilot=True))
    assert list(Round.objects.counting()) == [] and list(Round.objects.counting_for_player()) == [round_]


def test_a_shadow_banned_players_round_counts_only_in_their_own_eyes() -> None:
    session = PlaySessionFactory(participant__ban_state=Participant.BanState.SHADOW,
                                 participant__banned_at=timezone.now())  # fmt: skip
    round_ = scored(session)
    assert list(Round.objects.counting()) == [] and list(Round.objects.counting_for_player()) == [round_]


def test_skipped_and_invalidated_rounds_count_for_nobody() -> None:
    session = PlaySessionFactory()
    scored(session, outcome="skipped", points=0)
    scored(session, invalidated_at=timezone.now())
    assert not Round.objects.counting_for_player().exists()


def test_completion_counts_rounds_with_work_in_them_and_skips_when_the_study_says_so() -> None:
    experiment = ExperimentFactory(query_every=10)
    session = PlaySessionFactory(experiment=experiment)
    painted = scored(session, bubble_count=10, outcome="wrong", points=0)
    scored(session, bubble_count=9, outcome="wrong", points=0)  # the partner never looked: no work
    skipped = scored(session, bubble_count=0, outcome="skipped", points=0)
    RoundFactory(session=session, bubble_count=40)  # still playing
    assert set(Round.objects.completing(experiment)) == {painted, skipped}
    experiment.skips_count_for_completion = False
    assert set(Round.objects.completing(experiment)) == {painted}


def test_moderated_rounds_are_those_a_moderator_excluded_and_never_the_valid_ones() -> None:
    valid = scored(PlaySessionFactory())
    marked = scored(PlaySessionFactory(), invalidated_at=timezone.now())
    in_bad_session = scored(PlaySessionFactory(invalidated_at=timezone.now()))
    banned = scored(PlaySessionFactory(participant__ban_state=Participant.BanState.SHADOW,
                                       participant__banned_at=timezone.now()))  # fmt: skip
    assert set(Round.objects.moderated()) == {marked, in_bad_session, banned}
    assert not set(Round.objects.moderated()) & set(Round.objects.counting()) and valid in Round.objects.counting()
