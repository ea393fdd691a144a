"""What games announces (games.signals) and asks (games.consensus), seen from games alone, without maps."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from games import consensus, moderation_stats, signals
from games.models import Round
from games.quality import Thresholds
from games.services import moderation
from games.services.quality import round_context
from games.services.scoring import _record_score
from games.tests.factories import ExperimentFactory, ImageFactory, PlaySessionFactory, RoundFactory
from games.tests.moderation_data import scored_round, staff_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    """Every round_counted and rounds_changed sent while the test runs, as (signal name, arguments)."""
    messages: list[tuple[str, dict]] = []

    def counted(sender, **kwargs):
        messages.append(("round_counted", {k: v for k, v in kwargs.items() if k != "signal"}))

    def changed(sender, **kwargs):
        messages.append(("rounds_changed", {k: v for k, v in kwargs.items() if k != "signal"}))

    signals.round_counted.connect(counted, dispatch_uid="test.counted")
    signals.rounds_changed.connect(changed, dispatch_uid="test.changed")
    yield messages
    signals.round_counted.disconnect(dispatch_uid="test.counted")
    signals.rounds_changed.disconnect(dispatch_uid="test.changed")


@pytest.fixture
def without_maps():
    """games as if no app provided consensus maps."""
    previous = consensus._provider
    consensus.set_consensus_provider(None)
    yield
    consensus.set_consensus_provider(previous)


@pytest.mark.parametrize(("claimed", "counted"), [(Round.Outcome.CORRECT, True), (Round.Outcome.SKIPPED, False)])
def test_a_scored_round_that_counts_is_announced_once_committed(
    heard, django_capture_on_commit_callbacks, claimed, counted
) -> None:
    round_ = RoundFactory(status=Round.Status.SUBMITTED, outcome=claimed, client_outcome=claimed,
                          submitted_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _record_score(round_, [], "v1", None, None)
        assert heard == []  # nothing before the commit
    expected = {"experiment_id": round_.experiment_id, "image_id": round_.image_id}
    assert heard == ([("round_counted", expected)] if counted else [])


def test_a_moderator_action_announces_the_images_it_touched_per_experiment(
    heard, django_capture_on_commit_callbacks
) -> None:
    experiment = ExperimentFactory()
    images = [ImageFactory(image_set=experiment.image_set) for _ in range(2)]
    session = PlaySessionFactory(experiment=experiment)
    for image in reversed(images):
        scored_round(session=session, image=image, points=40)
    moderator = staff_in("moderators", "mona")
    with django_capture_on_commit_callbacks(execute=True):
        moderation.shadow_ban(actor=moderator, participant=session.participant, reason="bot")
        assert heard == []
    assert heard == [("rounds_changed", {"experiment_id": experiment.pk, "image_ids": sorted(i.pk for i in images)})]
    with django_capture_on_commit_callbacks(execute=True):  # changes nothing: nothing to announce
        moderation.shadow_ban(actor=moderator, participant=session.participant, reason="again")
    assert len(heard) == 1


def test_without_a_consensus_provider_the_rule_has_no_map_and_agreement_is_unknown(without_maps) -> None:
    round_ = scored_round(session=PlaySessionFactory(), image=ImageFactory(), points=40)
    assert consensus.consensus_map(round_.experiment_id, round_.image_id) is None
    context = round_context(round_, Thresholds())
    assert context.consensus is None and context.consensus_participants == 0
    assert moderation_stats.agreement(round_) is None


def test_a_registered_provider_feeds_both_the_rule_and_the_agreement(without_maps) -> None:
    round_ = scored_round(session=PlaySessionFactory(), image=ImageFactory(), points=40)
    points = list(round_.clicks.values_list("x", "y"))
    heat = np.zeros((256, 256), np.float32)
    heat[points[0][1], points[0][0]] = 1.0  # hot under the first bubble only
    consensus.set_consensus_provider(lambda experiment_id, image_id: consensus.ConsensusMap(heat, 7))
    context = round_context(round_, Thresholds())
    assert context.consensus is heat and context.consensus_participants == 7
    expected = consensus.normalised_saliency(heat, [x for x, _ in points], [y for _, y in points])
    assert expected is not None and expected > 0
    assert moderation_stats.agreement(round_) == expected


def test_normalised_saliency_is_the_mean_z_score_at_the_points_and_undefined_on_a_flat_map() -> None:
    heat = np.array([[0.0, 1.0], [0.0, 1.0]])  # mean 0.5, std 0.5: z = -1 on the left, +1 on the right
    assert consensus.normalised_saliency(heat, [1, 1], [0, 1]) == 1.0
    assert consensus.normalised_saliency(heat, [0, 1], [0, 0]) == 0.0
    assert consensus.normalised_saliency(np.ones((2, 2)), [0], [0]) is None
    assert consensus.normalised_saliency(heat, [], []) is None
