"""Scoring is authoritative, survives a dead partner or broker, and ignores what clients claim."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import kombu.pools
import pytest

from clickme_site.celery import app as celery_app
from games.models import PartnerGuess, Round
from games.painting import points_for
from games.services.scoring import enqueue_unscored_rounds
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claimed_success_without_bubbles_scores_nothing(new_player, partner, eager_tasks) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.submit(round_id, "correct", 0, points=100, elapsed_ms=1)
    state = player.round(round_id).json()
    assert (state["status"], state["outcome"], state["points"]) == ("scored", "wrong", 0)
    assert Round.objects.get().client_outcome == "correct"


def test_the_outcome_and_points_come_from_the_partner_and_stored_times(new_player, partner, eager_tasks) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(40))
    player.submit(round_id, "correct", 40)
    round_ = Round.objects.get()
    guesses = list(PartnerGuess.objects.filter(round=round_).order_by("query_index"))
    assert [guess.bubble_count for guess in guesses] == [10, 20, 30, 40]
    first = next((guess for guess in guesses if guess.is_correct), None)
    expected_ms = None if first is None else painted(40)[first.bubble_count - 1][2]
    assert round_.outcome == ("correct" if first else "wrong")
    assert round_.points == points_for(recognised_at_ms=expected_ms, settings=round_.settings)


def test_rounds_wait_while_the_partner_is_down_and_the_sweep_scores_them(
    new_player, partner_checkpoint, settings, eager_tasks
) -> None:
    from model_server.serve import ServerSettings
    from model_server.tests.serving import run_server

    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(20))
    settings.MODEL_SERVER_URL = "http://127.0.0.1:9"  # nothing listens: the partner is down
    answer = player.submit(round_id, "wrong", 20)
    assert answer.status_code == 200 and answer.json()["status"] == "submitted"
    assert Round.objects.get().status == "submitted"

    server_settings = ServerSettings(checkpoint=partner_checkpoint, name="demo-gala", image_root=settings.MEDIA_ROOT)
    with run_server(server_settings) as server:  # the partner comes back
        settings.MODEL_SERVER_URL = server.url
        assert enqueue_unscored_rounds(older_than=timedelta(0)) == 1
    assert Round.objects.get().status == "scored"
    assert PartnerGuess.objects.count() == 2


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point Celery at another broker for a while, dropping the pooled connections both ways."""

    def drop_pools() -> None:
        # Celery and kombu cache connection and producer pools made for the old URL.
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        kombu.pools.reset()

    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    drop_pools()
    celery_app.conf.update(broker_url=url, task_always_eager=False)
    try:
        yield
    finally:
        drop_pools()
        celery_app.conf.update(broker_url=saved[0], task_always_eager=saved[1])


def test_with_the_broker_unreachable_a_submission_succeeds_and_is_scored_later(
    new_player, partner, eager_tasks
) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    with broker_at("redis://127.0.0.1:9/0"):  # nothing listens there
        answer = player.submit(round_id, "wrong", 10)
    assert answer.status_code == 200 and Round.objects.get().status == "submitted"
    enqueue_unscored_rounds(older_than=timedelta(0))  # what the periodic sweep does once it is back
    assert Round.objects.get().status == "scored"
