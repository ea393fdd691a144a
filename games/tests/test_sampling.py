"""The sampler serves unplayed, playable images, fewest valid rounds first, catch trials at their rate."""

from __future__ import annotations

import random

import pytest

from games.models import Image
from games.services.sampling import choose_image
from games.tests.factories import ExperimentFactory, ImageFactory, ParticipantFactory, RoundFactory, png_file

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


def test_catch_trials_are_mixed_in_at_the_experiments_rate(experiment) -> None:
    experiment.catch_trial_rate = 0.25
    images(experiment, 1)
    images(experiment, 1, is_catch_trial=True, mask=png_file())
    rng = random.Random(7)
    picks = [choose_image(experiment=experiment, participant=ParticipantFactory(), rng=rng) for _ in range(400)]
    share = sum(image.is_catch_trial for image in picks) / len(picks)
    assert 0.18 < share < 0.32
