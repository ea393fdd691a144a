"""The sampler serves unplayed, playable images, fewest valid rounds first, and each session its catch trials."""

from __future__ import annotations

import uuid

import pytest

from games.models import Image
from games.services.rounds import start_round, submit_round
from games.services.sampling import catch_rounds, choose_image
from games.tests.factories import (
    ExperimentFactory,
    ImageFactory,
    ParticipantFactory,
    PlaySessionFactory,
    RoundFactory,
    png_file,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment():
    return ExperimentFactory(target_maps_per_image=3)


def images(experiment, count: int, **fields: object) -> list[Image]:
    return [ImageFactory(image_set=experiment.image_set, **fields) for _ in range(count)]


def test_it_prefers_images_with_the_fewest_valid_rounds(experiment) -> None:
    busy, quiet = images(experiment, 2)
    busy.valid_rounds = 2
    busy.save()
    picks = {choose_image(experiment=experiment, participant=ParticipantFactory()) for _ in range(10)}
    assert picks == {quiet}


def test_it_never_serves_an_image_twice_to_a_participant(experiment) -> None:
    first, second = images(experiment, 2)
    participant = ParticipantFactory()
    RoundFactory(session__participant=participant, session__experiment=experiment, image=first)
    assert choose_image(experiment=experiment, participant=participant) == second
    RoundFactory(session__participant=participant, session__experiment=experiment, image=second)
    assert choose_image(experiment=experiment, participant=participant) is None


def test_retired_and_rejected_images_are_never_served(experiment) -> None:
    images(experiment, 1, state=Image.State.RETIRED)
    images(experiment, 1, state=Image.State.REJECTED)
    assert choose_image(experiment=experiment, participant=ParticipantFactory()) is None


def test_images_at_their_target_wait_until_every_image_has_reached_it(experiment) -> None:
    done, todo = images(experiment, 2)
    done.valid_rounds, todo.valid_rounds = 3, 2
    done.save(), todo.save()
    assert choose_image(experiment=experiment, participant=ParticipantFactory()) == todo
    todo.valid_rounds = 5
    todo.save()
    assert choose_image(experiment=experiment, participant=ParticipantFactory()) == done


def test_a_catch_trial_image_is_served_when_the_round_asks_for_one(experiment) -> None:
    ordinary = images(experiment, 1)[0]
    catch = images(experiment, 1, is_catch_trial=True, mask=png_file())[0]
    participant = ParticipantFactory()
    assert choose_image(experiment=experiment, participant=participant, catch_trial=True) == catch
    assert choose_image(experiment=experiment, participant=participant) == ordinary
    RoundFactory(session__participant=participant, session__experiment=experiment, image=catch)
    # None left: the round gets an ordinary image rather than none, and the other way round.
    assert choose_image(experiment=experiment, participant=participant, catch_trial=True) == ordinary
    other = ParticipantFactory()
    RoundFactory(session__participant=other, session__experiment=experiment, image=ordinary)
    assert choose_image(experiment=experiment, participant=other) == catch


@pytest.mark.parametrize(("rate", "rounds", "expected"), [(0.25, 10, 3), (0.1, 10, 1), (0.01, 10, 1), (1.0, 4, 4)])
def test_every_session_gets_its_share_of_catch_trials_and_at_least_one(experiment, rate, rounds, expected) -> None:
    experiment.catch_trial_rate, experiment.rounds_per_session = rate, rounds
    plans = [catch_rounds(experiment=experiment, session_id=session_id) for session_id in range(200)]
    assert {len(plan) for plan in plans} == {expected}
    blocks = [range(block * rounds // expected, (block + 1) * rounds // expected) for block in range(expected)]
    assert all(len(plan & set(block)) == 1 for plan in plans for block in blocks)  # one in each block
    if expected < rounds:  # placed at random: no round index is always (or never) a catch trial
        assert set().union(*plans) == set(range(rounds))
    # Fixed for a session: a resumed session sees the same plan.
    assert catch_rounds(experiment=experiment, session_id=7) == plans[7]


def test_no_catch_trials_at_rate_zero(experiment) -> None:
    assert catch_rounds(experiment=experiment, session_id=1) == frozenset()


def test_rounds_started_follow_the_sessions_catch_trial_plan(experiment) -> None:
    experiment.catch_trial_rate, experiment.rounds_per_session = 0.3, 6
    experiment.save()
    images(experiment, 6)
    images(experiment, 3, is_catch_trial=True, mask=png_file())
    session = PlaySessionFactory(experiment=experiment)
    plan = catch_rounds(experiment=experiment, session_id=session.pk)
    started = []
    for _ in range(6):  # a session plays one round at a time: each is submitted before the next starts
        started.append(start_round(session=session, client_round_id=uuid.uuid4()).round)
        submit_round(round_=started[-1], claimed_outcome="skipped", bubble_count=0)
    assert {index for index, round_ in enumerate(started) if round_.is_catch_trial} == plan
