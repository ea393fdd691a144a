"""Each game call costs a small, fixed number of database queries, however long the round.

Under load the web process's time per played round is mostly round trips to Postgres
(docs/load-testing.md); these budgets keep a change from quietly adding one to every call of
every player. Counted with Django's test client, in this thread, on whichever database runs.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from games.models import QualityFlag, Round
from games.services import rounds
from games.services.scoring import score_round
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db(transaction=True)

# Queries per call, transaction statements included (Postgres sends BEGIN and COMMIT; SQLite
# does not, so it stays within the same budget).
BUDGET = {"session": 5, "start": 9, "clicks": 6, "guess": 2, "guess with clicks": 6, "submit": 5, "state": 2,
          "scoring": 29}  # fmt: skip


class CountingPlayer:
    """A consented participant whose every API call's queries are counted, by call."""

    def __init__(self, slug: str) -> None:
        self.client = Client(enforce_csrf_checks=True)
        page = self.client.get(f"/play/{slug}/").content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.client.post(f"/play/{slug}/", {"csrfmiddlewaretoken": token, "consent": "on", "age_confirmed": "on"})
        self.queries: dict[str, list[int]] = {}

    def call(self, name: str, path: str, body: object | None = None) -> dict:
        with CaptureQueriesContext(connection) as captured:
            if body is None:
                response = self.client.get(path)
            else:
                token = self.client.cookies["csrftoken"].value
                response = self.client.post(path, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
        assert response.status_code in (200, 201), response.content
        self.queries.setdefault(name, []).append(len(captured))
        return response.json()


def test_a_round_of_play_stays_within_each_calls_query_budget(demo, demo_partner, broker_tasks, monkeypatch) -> None:
    # Scoring runs in a worker, not in the submit call: here it is only recorded as asked for, and
    # run below as the worker would; the map build it asks for is not sent.
    scoring: list[tuple] = []
    monkeypatch.setattr(rounds, "enqueue_on_commit", lambda *args, **kwargs: scoring.append(args))
    monkeypatch.setattr("maps.services.enqueue", lambda *args, **kwargs: None)
    player = CountingPlayer(demo.slug)
    session = player.call("session", f"/api/play/{demo.slug}/sessions/", {"pointer_type": "mouse"})
    round_id = str(uuid.uuid4())
    player.call("start", "/api/rounds/", {"session_id": session["session_id"], "client_round_id": round_id})
    api, clicks = f"/api/rounds/{round_id}/", painted(50)
    for end in (10, 20, 30):  # the way simulate_players uploads: clicks, then a guess
        player.call("clicks", f"{api}clicks/", {"start_seq": end - 10, "clicks": clicks[end - 10 : end]})
        player.call("guess", f"{api}guess/", {"bubble_count": end})
    for end in (40, 50):  # the way the page does: the guess carries the new bubbles
        player.call("guess with clicks", f"{api}guess/", {"bubble_count": end, "start_seq": end - 10,
                                                          "clicks": clicks[end - 10 : end]})  # fmt: skip
    player.call("submit", f"{api}submit/", {"outcome": "wrong", "bubble_count": 50})
    player.call("state", api)
    # The worker's scoring task, the partner's live answers remembered (no call to the partner), on a
    # round the quality checks flag twice (evenly spaced bubbles at a steady pace): 8 of its queries.
    pk = Round.objects.get(client_round_id=round_id).pk
    with CaptureQueriesContext(connection) as captured:
        score_round(round_id=pk)
    player.queries["scoring"] = [len(captured)]
    assert QualityFlag.objects.filter(round_id=pk).count() == 2
    over = {name: counts for name, counts in player.queries.items() if max(counts) > BUDGET[name]}
    assert not over, f"over budget {BUDGET}: {over}"
    assert len(set(player.queries["clicks"][1:])) == 1, "later uploads cost the same as the second"
    assert [name for name, *_ in scoring] == [rounds.SCORE_TASK]
