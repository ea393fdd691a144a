"""The landing page and the health check answer over HTTP."""

from __future__ import annotations

import pytest
from django.conf import settings

from games.tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


def test_the_landing_page_lists_live_experiments(client) -> None:
    ExperimentFactory(title="Shapes on clutter")
    ExperimentFactory(title="Hidden draft", status="draft")
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "ClickMe" in page and "Shapes on clutter" in page and "Hidden draft" not in page


def test_the_health_check_reports_the_database_and_the_broker(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"] == ("ok" if settings.REDIS_URL else "in-process")


def test_the_health_check_answers_probes_from_inside_the_network(client, settings) -> None:
    settings.ALLOWED_HOSTS = ["clickme.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/", HTTP_HOST="10.0.0.7:8000").status_code == 400
