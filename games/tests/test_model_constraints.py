"""The database itself refuses rows that break the data model's rules."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from games.models import Click, Experiment, ModerationAction, Participant, PartnerGuess, Round
from games.tests.factories import (
    ExperimentFactory,
    ImageFactory,
    ParticipantFactory,
    PartnerModelFactory,
    PartnerModelVersionFactory,
    RoundFactory,
    UserFactory,
    png_file,
)

pytestmark = pytest.mark.django_db


def refused(callable_, *args, **kwargs) -> None:
    """Assert the database raises IntegrityError for this write, leaving the test usable."""
    with pytest.raises(IntegrityError), transaction.atomic():
        callable_(*args, **kwargs)


def test_an_image_crop_must_be_256_square() -> None:
    refused(ImageFactory, crop=png_file(200))


def test_an_image_name_and_checksum_are_unique_within_a_set() -> None:
    image = ImageFactory()
    refused(ImageFactory, image_set=image.image_set, name=image.name, checksum="other")
    refused(ImageFactory, image_set=image.image_set, checksum=image.checksum)
    ImageFactory(name=image.name, checksum=image.checksum)  # another set is fine


def test_a_catch_trial_image_needs_a_mask() -> None:
    refused(ImageFactory, is_catch_trial=True)


@pytest.mark.parametrize(
    "field, value",
    [
        ("bubble_size", 0),
        ("bubble_size", 300),
        ("query_every", 0),
        ("time_limit_ms", 10),
        ("top_k", 0),
        ("noise_std", -0.1),
        ("catch_trial_rate", 1.5),
        ("rounds_per_session", 0),
        ("target_maps_per_image", 0),
    ],
)
def test_experiment_game_parameters_stay_in_range(field: str, value: float) -> None:
    refused(ExperimentFactory, **{field: value})


def test_a_panel_experiment_needs_a_completion_code() -> None:
    refused(ExperimentFactory, recruitment=Experiment.Recruitment.PROLIFIC)
    ExperimentFactory(recruitment=Experiment.Recruitment.PROLIFIC, completion_code="C1A2B3")


def test_only_one_version_of_a_partner_is_active() -> None:
    partner = PartnerModelFactory()
    PartnerModelVersionFactory(partner=partner, is_active=True)
    PartnerModelVersionFactory(partner=partner, is_active=False)
    refused(PartnerModelVersionFactory, partner=partner, is_active=True)


def test_panel_participants_carry_their_panel_id_once() -> None:
    refused(ParticipantFactory, source=Participant.Source.PROLIFIC)
    refused(ParticipantFactory, source=Participant.Source.MTURK)
    refused(ParticipantFactory, source=Participant.Source.SONA)
    refused(ParticipantFactory, source=Participant.Source.ACCOUNT)
    ParticipantFactory(source=Participant.Source.PROLIFIC, prolific_pid="5f1e")
    refused(ParticipantFactory, source=Participant.Source.PROLIFIC, prolific_pid="5f1e")


def test_consent_and_bans_are_recorded_with_their_version_and_time() -> None:
    refused(ParticipantFactory, consented_at=timezone.now())
    refused(ParticipantFactory, ban_state=Participant.BanState.SHADOW)


def test_a_client_round_id_is_used_once_per_participant() -> None:
    first = RoundFactory()
    refused(RoundFactory, session=first.session, client_round_id=first.client_round_id)
    RoundFactory(client_round_id=first.client_round_id)  # another participant may reuse it


def test_a_submitted_round_has_an_outcome_and_a_scored_round_a_score() -> None:
    round_ = RoundFactory()
    round_.status = Round.Status.SUBMITTED
    refused(round_.save)
    round_.outcome, round_.submitted_at = Round.Outcome.WRONG, timezone.now()
    round_.save()
    round_.status = Round.Status.SCORED
    refused(round_.save)
    round_.points, round_.scored_at = 0, timezone.now()
    round_.partner_version = PartnerModelVersionFactory()
    round_.save()


def test_clicks_stay_inside_the_image_and_each_sequence_number_is_stored_once() -> None:
    round_ = RoundFactory()
    Click.objects.create(round=round_, seq=0, x=0, y=255, t_ms=0)
    refused(Click.objects.create, round=round_, seq=0, x=5, y=5, t_ms=50)
    refused(Click.objects.create, round=round_, seq=1, x=256, y=5, t_ms=50)
    refused(Click.objects.create, round=round_, seq=2, x=5, y=-1, t_ms=50)
    assert list(round_.clicks.values_list("seq", "x", "y")) == [(0, 0, 255)]


def test_a_query_is_scored_once_per_partner_version() -> None:
    round_ = RoundFactory()
    version = PartnerModelVersionFactory()
    fields = dict(round=round_, query_index=0, bubble_count=10, classes=["a"], probabilities=[0.9])
    PartnerGuess.objects.create(partner_version=version, is_correct=False, **fields)
    refused(PartnerGuess.objects.create, partner_version=version, is_correct=False, **fields)
    PartnerGuess.objects.create(partner_version=PartnerModelVersionFactory(), is_correct=True, target_rank=0, **fields)
    fields["query_index"] = 1
    refused(PartnerGuess.objects.create, partner_version=version, is_correct=True, **fields)


def test_a_moderation_action_needs_a_reason_and_a_target() -> None:
    actor, participant = UserFactory(), ParticipantFactory()
    kind = ModerationAction.Kind.SHADOW_BAN
    refused(ModerationAction.objects.create, actor=actor, kind=kind, reason="", participant=participant)
    refused(ModerationAction.objects.create, actor=actor, kind=kind, reason="bot")
    ModerationAction.objects.create(actor=actor, kind=kind, reason="bot", participant=participant)


def test_rounds_keep_their_rules_snapshot() -> None:
    round_ = RoundFactory(client_round_id=uuid.uuid4())
    round_.experiment.bubble_size = 14
    round_.experiment.save()
    round_.refresh_from_db()
    assert round_.settings["bubble_size"] == 21
