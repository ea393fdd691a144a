"""Admission at a study's door: past the cap, new arrivals get a clear busy page; players already in play on."""

from __future__ import annotations

import types
import uuid

import pytest
from django.core.cache import cache
from django.test import Client

from games import ratelimit
from games.models import Round
from games.tests.factories import ExperimentFactory, ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


@pytest.fixture(autouse=True)
def still_clock(monkeypatch) -> list[float]:
    """The door's clock stands 15 s into a minute: a slow machine must not open a new minute mid-test."""
    clock = [60.0 * 28_000_000 + 15]
    monkeypatch.setattr("games.admission.time", types.SimpleNamespace(time=lambda: clock[0]))
    return clock


@pytest.fixture
def experiment(settings) -> object:
    settings.ADMISSION_PLAYERS_PER_MINUTE = 2
    experiment = ExperimentFactory(rounds_per_session=5)
    for _ in range(3):
        ImageFactory(image_set=experiment.image_set)
    return experiment


def arrive(experiment: object, address: str) -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=address)
    return client, client.get(f"/play/{experiment.slug}/")


def test_past_the_cap_a_new_arrival_gets_a_busy_page_with_retry_after(experiment) -> None:
    answers = [arrive(experiment, f"198.51.100.{n}")[1] for n in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 503]
    busy = answers[2]
    assert busy["Retry-After"] == "45"  # the rest of this minute
    text = busy.content.decode()
    assert "try again in a minute" in text and 'http-equiv="refresh" content="45"' in text
    assert "consent" not in text.lower()  # no form to fill in that would be refused


def test_players_already_in_keep_playing_when_the_door_is_full(experiment) -> None:
    client, _ = arrive(experiment, "198.51.100.1")
    assert client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"}).status_code == 302
    arrive(experiment, "198.51.100.2")
    assert arrive(experiment, "198.51.100.3")[1].status_code == 503  # the door is full now
    assert client.get(f"/play/{experiment.slug}/").status_code == 302  # back at the link: on to the instructions
    post = lambda path, body: client.post(path, body, content_type="application/json")  # noqa: E731
    session = post(f"/api/play/{experiment.slug}/sessions/", {})
    assert session.status_code == 201
    start = {"session_id": session.json()["session_id"], "client_round_id": str(uuid.uuid4())}
    assert post("/api/rounds/", start).status_code == 201
    assert Round.objects.count() == 1


def test_the_door_reopens_the_next_minute(experiment, still_clock) -> None:
    for n in range(2):
        arrive(experiment, f"198.51.100.{n}")
    assert arrive(experiment, "198.51.100.7")[1].status_code == 503
    still_clock[0] += 45
    assert arrive(experiment, "198.51.100.7")[1].status_code == 200


def test_no_cap_lets_everyone_in(experiment, settings) -> None:
    settings.ADMISSION_PLAYERS_PER_MINUTE = 0
    assert {arrive(experiment, f"198.51.100.{n}")[1].status_code for n in range(5)} == {200}


def test_the_door_counts_in_this_process_while_the_cache_is_down(experiment, settings, monkeypatch) -> None:
    monkeypatch.setattr("games.ratelimit.LOCAL", ratelimit.LocalCounters())  # this test's own memory
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}  # fmt: skip
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert [arrive(experiment, f"198.51.100.{n}")[1].status_code for n in range(3)] == [200, 200, 503]
