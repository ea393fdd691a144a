"""A participant's visit through Django's test client: a study to enter, entering it, its API, a session, a round."""

from __future__ import annotations

import uuid

from django.test import Client

from games.models import Experiment
from games.tests.factories import ExperimentFactory, ImageFactory, ImageSetFactory
from games.tests.http_player import painted


def study(recruitment: str = "open", images: int = 4, **fields: object) -> Experiment:
    image_set = ImageSetFactory()
    for _ in range(images):
        ImageFactory(image_set=image_set)
    completion = {"completion_code": "CODE-123"} if recruitment != "open" else {}
    if recruitment == "sona":
        completion["completion_url"] = "https://uni.sona-systems.com/webstudy_credit.aspx?survey_code={sona_id}"
    return ExperimentFactory(
        image_set=image_set, recruitment=recruitment, rounds_per_session=2, consent_text="We store clicks.",
        **{**completion, **fields},
    )  # fmt: skip


def enter(client: Client, experiment: Experiment, params: dict[str, str] | None = None):
    """Open the study's link (with the panel's parameters) and tick the consent boxes."""
    page = client.get(f"/play/{experiment.slug}/", params or {})
    assert page.status_code == 200, page.content
    return client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})


def api(client: Client, path: str, body: dict | None = None):
    return client.post(path, body or {}, content_type="application/json")


def start_session(client: Client, experiment: Experiment) -> int:
    response = api(client, f"/api/play/{experiment.slug}/sessions/", {"pointer_type": "mouse"})
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def play_round(client: Client, session_id: int, *, bubbles: int = 10, outcome: str = "wrong"):
    """Start a round, upload `bubbles` bubbles and submit it; the submit answer."""
    started = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    assert started.status_code == 201, started.content
    round_id = started.json()["client_round_id"]
    if bubbles:
        api(client, f"/api/rounds/{round_id}/clicks/", {"start_seq": 0, "clicks": painted(bubbles)})
    return api(client, f"/api/rounds/{round_id}/submit/", {"outcome": outcome, "bubble_count": bubbles})
