"""The maps' sweep finds maps left older than their rounds (a lost build task) and has them rebuilt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from games.models import Round
from games.tests.factories import ExperimentFactory, ImageFactory
from maps.models import ClickMap
from maps.services import build_click_map
from maps.sweep import enqueue_stale_maps, stale_maps
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db


def scored_minutes_ago(minutes: float, **kwargs: object) -> Round:
    round_ = scored_round(**kwargs)
    Round.objects.filter(pk=round_.pk).update(scored_at=timezone.now() - timedelta(minutes=minutes))
    return round_


def test_a_scored_round_whose_map_was_never_built_makes_its_map_stale() -> None:
    experiment, image = ExperimentFactory(), ImageFactory()
    scored_minutes_ago(5, experiment=experiment, image=image, clicks=[(10, 10), (20, 20)])
    assert stale_maps() == [(experiment.pk, image.pk)]


def test_a_map_built_after_its_rounds_is_not_stale_and_a_newer_round_makes_it_stale_again() -> None:
    experiment, image = ExperimentFactory(), ImageFactory()
    scored_minutes_ago(5, experiment=experiment, image=image, clicks=[(10, 10), (20, 20)])
    build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert stale_maps() == []
    ClickMap.objects.filter(image=image).update(updated_at=timezone.now() - timedelta(minutes=10))
    scored_minutes_ago(1, experiment=experiment, image=image, clicks=[(30, 30), (40, 40)])
    assert stale_maps() == [(experiment.pk, image.pk)]


def test_the_sweep_rebuilds_stale_maps_from_their_rounds_and_leaves_fresh_ones(eager_tasks) -> None:
    experiment, stale_image, fresh_image = ExperimentFactory(), ImageFactory(), ImageFactory()
    scored_minutes_ago(5, experiment=experiment, image=fresh_image, clicks=[(1, 1), (2, 2)])
    build_click_map(experiment_id=experiment.pk, image_id=fresh_image.pk)
    scored_minutes_ago(5, experiment=experiment, image=stale_image, clicks=[(10, 10), (20, 20)])
    scored_minutes_ago(4, experiment=experiment, image=stale_image, clicks=[(30, 30), (40, 40), (50, 50)])
    assert enqueue_stale_maps() == 1  # tasks run in-process here: the rebuild is done on return
    rebuilt = ClickMap.objects.get(experiment=experiment, image=stale_image)
    assert (rebuilt.participant_count, rebuilt.click_count) == (2, 5)
    assert stale_maps() == [] and enqueue_stale_maps() == 0


def test_rounds_scored_before_the_look_back_are_left_alone() -> None:
    experiment, image = ExperimentFactory(), ImageFactory()
    scored_minutes_ago(3 * 24 * 60, experiment=experiment, image=image, clicks=[(10, 10), (20, 20)])
    assert stale_maps() == [] and stale_maps(look_back=timedelta(days=7)) == [(experiment.pk, image.pk)]
