"""Rate limits on the game API: per participant, per address, a clear 429, and none for honest play."""

from __future__ import annotations

import time
import types
import uuid

import pytest
from django.core.cache import cache
from django.test import Client

from games.tests.factories import ExperimentFactory, ImageFactory
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()  # the local-memory cache outlives a test; counters must not


@pytest.fixture(autouse=True)
def still_clock(monkeypatch) -> list[float]:
    """The throttle's wall clock stands 5 s into a window: a slow machine must not cross a window edge mid-test."""
    clock = [3600.0 * 480_000 + 5]  # 5 s past a whole hour, so 5 s into any window of 10, 60 or 3600 s
    monkeypatch.setattr("games.ratelimit.time", types.SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic))
    return clock


@pytest.fixture
def experiment() -> object:
    experiment = ExperimentFactory(rounds_per_session=20)
    for _ in range(3):
        ImageFactory(image_set=experiment.image_set)
    return experiment


def player(experiment: object, address: str = "203.0.113.7") -> Client:
    """A participant who consented, browsing from `address`."""
    client = Client(REMOTE_ADDR=address)
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    return client


def summary(client: Client, experiment: object, **headers: str) -> object:
    return client.get(f"/api/play/{experiment.slug}/summary/", headers=headers)


def limits(settings: object, **scopes: tuple[int, int]) -> None:
    settings.GAME_RATE_LIMITS = {**settings.GAME_RATE_LIMITS, **scopes}


def test_a_participant_over_the_limit_gets_a_clear_429_with_retry_after(experiment, settings) -> None:
    limits(settings, other=(3, 10))
    client = player(experiment)
    assert [summary(client, experiment).status_code for _ in range(3)] == [200, 200, 200]
    refused = summary(client, experiment)
    assert refused.status_code == 429
    body = refused.json()
    assert set(body) == {"error", "retry_after"} and "too many requests" in body["error"]
    assert 1 <= body["retry_after"] <= 10 and refused["Retry-After"] == str(body["retry_after"])


def test_scopes_are_counted_apart(experiment, settings) -> None:
    limits(settings, rounds=(1, 10))
    client = player(experiment)
    session = client.post(f"/api/play/{experiment.slug}/sessions/", {}, content_type="application/json").json()
    start = {"session_id": session["session_id"], "client_round_id": str(uuid.uuid4())}
    assert client.post("/api/rounds/", start, content_type="application/json").status_code == 201
    again = {**start, "client_round_id": str(uuid.uuid4())}
    assert client.post("/api/rounds/", again, content_type="application/json").status_code == 429
    assert summary(client, experiment).status_code == 200  # another scope, its own budget


def test_an_address_is_limited_across_participants_and_others_are_not(experiment, settings) -> None:
    limits(settings, other=(2, 10))
    settings.GAME_RATE_LIMIT_ADDRESS_FACTOR = 2
    crowd = [player(experiment) for _ in range(3)]
    codes = [summary(client, experiment).status_code for client in crowd for _ in range(2)]
    assert codes == [200, 200, 200, 200, 429, 429]  # the address's 4 are used up by the first two
    assert summary(player(experiment, "198.51.100.9"), experiment).status_code == 200


def test_a_forged_forwarded_for_header_does_not_open_a_new_budget(experiment, settings) -> None:
    limits(settings, other=(2, 10))
    settings.GAME_RATE_LIMIT_ADDRESS_FACTOR = 1
    first, second = player(experiment), player(experiment)
    assert [summary(first, experiment).status_code for _ in range(2)] == [200, 200]
    assert summary(second, experiment, X_Forwarded_For="192.0.2.1").status_code == 429


def test_the_window_passes_and_zero_turns_a_limit_off(experiment, settings, still_clock) -> None:
    limits(settings, other=(1, 10))
    client = player(experiment)
    clock = still_clock
    assert [summary(client, experiment).status_code for _ in range(2)] == [200, 429]
    clock[0] += 10
    assert summary(client, experiment).status_code == 200
    limits(settings, other=(0, 10))
    assert all(summary(client, experiment).status_code == 200 for _ in range(5))


def test_an_honest_round_at_full_speed_stays_under_the_default_limits(experiment) -> None:
    client = player(experiment)
    post = lambda path, body: client.post(path, body, content_type="application/json")  # noqa: E731
    session = post(f"/api/play/{experiment.slug}/sessions/", {}).json()["session_id"]
    codes = []
    for _ in range(3):  # three rounds back to back, uploads every 10 bubbles as the browser does
        round_id = post("/api/rounds/", {"session_id": session, "client_round_id": str(uuid.uuid4())}).json()
        round_id = round_id["client_round_id"]
        clicks = painted(100)
        for start in range(0, 100, 10):
            codes.append(
                post(f"/api/rounds/{round_id}/clicks/", {"start_seq": start, "clicks": clicks[start : start + 10]})
            )
        codes.append(post(f"/api/rounds/{round_id}/submit/", {"outcome": "wrong", "bubble_count": 100}))
        codes.append(client.get(f"/api/rounds/{round_id}/"))
    codes.append(summary(client, experiment))
    assert {answer.status_code for answer in codes} == {200}, [a.content for a in codes if a.status_code != 200]


def test_with_redis_down_play_goes_on_and_limits_are_counted_in_the_process(settings, experiment) -> None:
    client = player(experiment)  # consented while the cache was up
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}  # fmt: skip
    settings.GAME_RATE_LIMITS = {**settings.GAME_RATE_LIMITS, "other": (3, 60)}
    answers = [summary(client, experiment).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
