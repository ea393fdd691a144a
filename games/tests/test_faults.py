"""When a part is down the site says so: /healthz per component, and 503 + Retry-After for a lost database."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from clickme_site import heartbeat
from clickme_site.errors import server_error
from games.tests.factories import ExperimentFactory, ImageFactory

pytestmark = pytest.mark.django_db

COMPONENTS = {"database", "cache", "broker", "model_server", "worker", "worker_heartbeat_age_s",
              "oldest_unscored_round_age_s"}  # fmt: skip


def lost_connection(*args: object, **kwargs: object) -> None:
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")


def test_the_health_check_reports_every_component_and_a_missing_partner_is_only_degraded(settings) -> None:
    settings.MODEL_SERVER_URL = "http://127.0.0.1:1"  # nothing listens there
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body.keys() >= COMPONENTS
    assert body["database"] == "ok" and body["cache"] == "ok"
    assert body["status"] == "degraded" and "model_server" in body["degraded"]
    assert body["model_server"] == "not ready" and body["oldest_unscored_round_age_s"] == 0.0


def test_with_the_partner_up_every_component_is_ok(partner) -> None:
    body = Client().get("/healthz").json()
    assert body["model_server"] == "ok"
    assert body["status"] in {"ok", "degraded"} and "model_server" not in body["degraded"]


def test_the_health_check_answers_503_with_retry_after_when_the_database_is_unreachable(monkeypatch) -> None:
    monkeypatch.setattr(connection, "cursor", lost_connection)
    response = Client().get("/healthz")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["status"] == "unavailable" and response.json()["database"] == "unreachable"


def test_a_worker_heartbeat_is_ok_when_fresh_and_stale_when_old(settings) -> None:
    settings.REDIS_URL = settings.REDIS_URL or "redis://127.0.0.1:1/0"  # the worker is a separate process
    heartbeat.stamp()
    assert Client().get("/healthz").json()["worker"] == "ok"
    from django.core.cache import cache

    cache.set(heartbeat.HEARTBEAT_KEY, time.time() - heartbeat.HEARTBEAT_STALE_S - 5)
    body = Client().get("/healthz").json()
    assert body["worker"] == "stale" and "worker" in body["degraded"]


def test_a_game_api_call_that_loses_the_database_answers_503_json_with_retry_after(monkeypatch) -> None:
    experiment = ExperimentFactory()
    ImageFactory(image_set=experiment.image_set)
    client = Client()
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    session = client.post(f"/api/play/{experiment.slug}/sessions/", {}, content_type="application/json").json()
    monkeypatch.setattr("games.api.start_round", lost_connection)
    response = client.post("/api/rounds/", {"session_id": session["session_id"],
                                            "client_round_id": "0b7e7f8e-2f43-4a0b-9d55-7d0f5d8d3f10"},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "database" in response.json()["error"] and response.json()["retry_after"] == 5


def test_a_page_that_loses_the_database_answers_a_503_page_not_a_traceback(monkeypatch) -> None:
    experiment = ExperimentFactory()
    monkeypatch.setattr("games.views.playable_experiment", lost_connection)
    response = Client(raise_request_exception=False).get(f"/play/{experiment.slug}/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Back in a moment" in response.content and b"Traceback" not in response.content


def test_a_database_outage_raised_outside_any_view_is_a_503_too(rf) -> None:
    """Middleware errors reach handler500 (Django converts them there), which tells an outage from a bug."""
    try:
        lost_connection()
    except OperationalError:
        page = server_error(rf.get("/play/demo/"))
        api = server_error(rf.get("/api/rounds/"))
    assert page.status_code == api.status_code == 503 and page["Retry-After"] == api["Retry-After"] == "5"
    assert b"Back in a moment" in page.content and api["Content-Type"] == "application/json"
    try:
        raise ValueError("a bug")
    except ValueError:
        bug = server_error(rf.get("/play/demo/"))
    assert bug.status_code == 500 and b"Something went wrong" in bug.content
