"""Rounds of one image counted close together share one map build; moderation and the sweep never wait."""

from __future__ import annotations

from unittest import mock

import pytest
from kombu.exceptions import OperationalError as BrokerError

from maps import pending_builds
from maps.models import ClickMap
from maps.services import build_requested_map, enqueue_map_build
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db

WAIT_S = 10


@pytest.fixture
def sent(experiment, image, broker_tasks, settings):
    """The build tasks sent to the broker (mocked), with no build waiting for the image at the start."""
    settings.MAP_BUILD_COALESCE_S = WAIT_S
    pending_builds.release(experiment.pk, image.pk)  # a marker another run left in a shared Redis
    with mock.patch("maps.tasks.build_click_map_task.apply_async") as send:
        yield send
    pending_builds.release(experiment.pk, image.pk)


def build_of(experiment, image) -> mock._Call:
    return mock.call((experiment.pk, image.pk), countdown=WAIT_S)


def test_rounds_counted_while_a_build_waits_are_read_by_that_build(experiment, image, sent) -> None:
    for _ in range(3):
        enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert sent.call_args_list == [build_of(experiment, image)]


def test_a_round_counted_once_the_build_started_asks_for_another(experiment, image, sent) -> None:
    enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    scored_round(experiment=experiment, image=image, clicks=[(1, 1), (2, 2)])
    build_requested_map(experiment_id=experiment.pk, image_id=image.pk)  # what the worker runs
    assert ClickMap.objects.get(experiment=experiment, image=image).participant_count == 1
    enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert sent.call_args_list == [build_of(experiment, image)] * 2


def test_each_image_has_its_own_waiting_build(experiment, image, sent) -> None:
    other = image.pk + 1
    pending_builds.release(experiment.pk, other)
    enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    enqueue_map_build(experiment_id=experiment.pk, image_id=other)
    pending_builds.release(experiment.pk, other)
    assert [call.args[0] for call in sent.call_args_list] == [(experiment.pk, image.pk), (experiment.pk, other)]


def test_a_moderators_change_and_the_sweep_build_at_once_even_while_a_build_waits(experiment, image, sent) -> None:
    enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    with mock.patch("maps.tasks.build_click_map_task.delay") as now:
        enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk, coalesce=False)
    now.assert_called_once_with(experiment.pk, image.pk)


def test_without_a_wait_every_round_asks_for_its_build(experiment, image, sent, settings) -> None:
    settings.MAP_BUILD_COALESCE_S = 0
    with mock.patch("maps.tasks.build_click_map_task.delay") as now:
        for _ in range(2):
            enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert now.call_count == 2 and not sent.called


def test_a_cache_that_cannot_be_reached_means_a_build_per_round(experiment, image, sent) -> None:
    with mock.patch("maps.pending_builds.cache.add", side_effect=ConnectionError("Redis is down")):
        for _ in range(2):
            enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert sent.call_args_list == [build_of(experiment, image)] * 2


def test_a_build_the_broker_refused_does_not_hold_back_the_next_round(experiment, image, sent) -> None:
    sent.side_effect = [BrokerError("no broker"), None]
    for _ in range(2):
        enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert sent.call_args_list == [build_of(experiment, image)] * 2
