"""A draft study is invisible to the public: its summary API and results page answer 404 (pilot link aside)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from games.models import Experiment
from games.tests.visits import enter, study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def public_answers(client: Client, experiment: Experiment) -> tuple[int, int]:
    summary = client.get(f"/api/play/{experiment.slug}/summary/")
    results = client.get(f"/play/{experiment.slug}/results/")
    return summary.status_code, results.status_code


def test_a_study_taken_back_to_draft_answers_404_to_its_participants() -> None:
    experiment = study()
    client = Client()
    enter(client, experiment)
    assert public_answers(client, experiment) == (200, 200)
    Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.DRAFT)
    assert public_answers(client, experiment) == (404, 404)
    assert "no such study" in client.get(f"/api/play/{experiment.slug}/summary/").json()["error"]


def test_a_draft_answers_404_to_a_participant_of_another_study_as_for_a_missing_one() -> None:
    live, draft = study(), study(status=Experiment.Status.DRAFT)
    client = Client()
    enter(client, live)
    assert public_answers(client, draft) == (404, 404)
    missing = Experiment(slug="no-such-study")
    assert public_answers(client, missing) == (404, 404)


def test_the_pilot_link_still_shows_a_draft_to_its_testers() -> None:
    experiment = study(status=Experiment.Status.DRAFT)
    client = Client()
    assert client.get(f"/play/{experiment.slug}/", {"pilot": experiment.pilot_token}).status_code == 200
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    assert public_answers(client, experiment) == (200, 200)
