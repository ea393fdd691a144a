"""A study as panel participants meet it: entry with the panel's parameters, consent, completion.

Driven through Django's test client, over the real views and game API (no partner needed:
rounds here are skipped or submitted unscored).
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.cache import cache
from django.test import Client

from games.models import Consent, Experiment, Participant, PlaySession, Round
from games.tests.http_player import painted
from games.tests.visits import api, enter, play_round, start_session, study

pytestmark = pytest.mark.django_db

PANEL_URLS = {
    "prolific": {"PROLIFIC_PID": "5f1e0c2ab3d4e5f6a7b8c9d0", "STUDY_ID": "study-77", "SESSION_ID": "sess-1"},
    "mturk": {
        "workerId": "A1B2C3D4E5",
        "assignmentId": "3XYZASSIGN",
        "hitId": "3HITID",
        "turkSubmitTo": "https://workersandbox.mturk.com",
    },
    "sona": {"id": "48213"},
}
PANEL_FIELD = {"prolific": "prolific_pid", "mturk": "mturk_worker_id", "sona": "sona_id"}


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Participant ids repeat from test to test; their rate-limit counters must not."""
    cache.clear()


@pytest.mark.parametrize("panel", ["prolific", "mturk", "sona"])
def test_a_panel_participant_consents_and_gets_their_panel_id_recorded(panel) -> None:
    experiment = study(panel)
    client = Client()
    response = enter(client, experiment, PANEL_URLS[panel])
    assert response.status_code == 302 and response["Location"].endswith("/instructions/")
    participant = Participant.objects.get()
    assert participant.source == panel
    assert getattr(participant, PANEL_FIELD[panel]) == next(iter(PANEL_URLS[panel].values()))
    consent = Consent.objects.get()
    assert (consent.participant, consent.experiment, consent.version) == (participant, experiment, "1")


@pytest.mark.parametrize("panel", ["prolific", "mturk", "sona"])
def test_the_same_panel_id_later_on_another_device_is_the_same_participant(panel) -> None:
    experiment = study(panel)
    enter(Client(), experiment, PANEL_URLS[panel])
    enter(Client(), experiment, PANEL_URLS[panel])
    assert Participant.objects.count() == 1


def test_two_panel_workers_on_one_browser_stay_two_participants() -> None:
    experiment = study("prolific")
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    page = client.get(f"/play/{experiment.slug}/", {"PROLIFIC_PID": "another-worker-id"})
    assert b"Consent to take part" in page.content  # the remembered participant is not this worker
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    assert sorted(Participant.objects.values_list("prolific_pid", flat=True)) == sorted(
        ["another-worker-id", PANEL_URLS["prolific"]["PROLIFIC_PID"]]
    )


@pytest.mark.parametrize("panel", ["prolific", "mturk", "sona"])
def test_a_panel_study_opened_without_the_panel_id_says_where_to_start_and_stores_nothing(panel) -> None:
    experiment = study(panel)
    client = Client()
    page = client.get(f"/play/{experiment.slug}/")
    assert page.status_code == 403
    assert re.search(rb"please open it from", page.content)
    forced = client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    assert forced.status_code == 403 and Participant.objects.count() == 0


def test_an_mturk_worker_previewing_the_hit_reads_about_it_but_cannot_consent() -> None:
    experiment = study("mturk")
    page = Client().get(f"/play/{experiment.slug}/", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "3H"})
    assert page.status_code == 200
    assert b"previewing this HIT" in page.content and b'name="consent"' not in page.content


def test_panel_studies_are_not_listed_on_the_public_landing_page() -> None:
    open_study, panel_study = study("open", title="Open one"), study("prolific", title="Paid one")
    page = Client().get("/").content.decode()
    assert open_study.title in page and panel_study.title not in page


def test_consenting_to_one_study_does_not_open_another_studys_api() -> None:
    study_a, study_b = study(), study()
    client = Client()
    enter(client, study_a)
    start_session(client, study_a)
    refused = api(client, f"/api/play/{study_b.slug}/sessions/", {"pointer_type": "mouse"})
    assert refused.status_code == 403 and study_b.slug in refused.json()["error"]
    assert client.get(f"/api/play/{study_b.slug}/summary/").status_code == 403
    assert PlaySession.objects.filter(experiment=study_b).count() == 0


def test_a_round_of_a_study_whose_consent_was_withdrawn_by_a_new_version_is_refused() -> None:
    experiment = study()
    client = Client()
    enter(client, experiment)
    session_id = start_session(client, experiment)
    started = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    experiment.consent_version = "2"
    experiment.consent_text = "We now also store the device you play on."
    experiment.save()
    round_id = started.json()["client_round_id"]
    upload = api(client, f"/api/rounds/{round_id}/clicks/", {"start_seq": 0, "clicks": painted(10)})
    assert upload.status_code == 403 and "consent version 2" in upload.json()["error"]
    assert Round.objects.get().bubble_count == 0
    assert b"Consent to take part" in client.get(f"/play/{experiment.slug}/").content  # asked again
    enter(client, experiment)
    assert set(Consent.objects.values_list("version", flat=True)) == {"1", "2"}


def test_ten_round_starts_without_submits_earn_no_completion() -> None:
    experiment = study("prolific", images=12)
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    for _ in range(10):
        api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    summary = client.get(f"/api/play/{experiment.slug}/summary/").json()
    assert summary["completion"] is None and summary["rounds_done"] == 0
    assert b"CODE-123" not in client.get(f"/play/{experiment.slug}/results/").content
    assert PlaySession.objects.get().completed_at is None


def test_rounds_submitted_with_nothing_painted_earn_no_completion() -> None:
    experiment = study("prolific", images=6)
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    for _ in range(3):
        assert play_round(client, session_id, bubbles=0).status_code == 200
    assert client.get(f"/api/play/{experiment.slug}/summary/").json()["completion"] is None


def test_the_rounds_the_study_asks_for_earn_the_code_and_the_panels_redirect() -> None:
    experiment = study("prolific", completion_url="https://app.prolific.com/submissions/complete?cc={code}")
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    first = play_round(client, session_id).json()
    assert (first["session"]["rounds_done"], first["session"]["complete"]) == (1, False)
    second = play_round(client, session_id, outcome="skipped", bubbles=0).json()  # skips count by default
    assert second["session"] == {"rounds_done": 2, "rounds_total": 2, "complete": True}
    completion = client.get(f"/api/play/{experiment.slug}/summary/").json()["completion"]
    assert completion["code"] == "CODE-123"
    assert completion["redirect_url"] == "https://app.prolific.com/submissions/complete?cc=CODE-123"
    assert PlaySession.objects.get().completed_at is not None
    assert api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())}).json()[
        "finished"
    ]


def test_a_study_can_say_that_skips_do_not_count_towards_completion() -> None:
    experiment = study("prolific", skips_count_for_completion=False)
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    play_round(client, session_id, outcome="skipped", bubbles=0)
    assert play_round(client, session_id, outcome="skipped", bubbles=0).json()["session"]["complete"] is False


def test_a_sona_completion_redirects_with_the_participants_sona_id() -> None:
    experiment = study("sona")
    client = Client()
    enter(client, experiment, PANEL_URLS["sona"])
    session_id = start_session(client, experiment)
    play_round(client, session_id)
    play_round(client, session_id)
    page = client.get(f"/play/{experiment.slug}/results/").content.decode()
    assert "https://uni.sona-systems.com/webstudy_credit.aspx?survey_code=48213" in page


def test_running_out_of_images_ends_the_session_with_completion() -> None:
    experiment = study("prolific", images=1)
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    play_round(client, session_id)
    out = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    assert out.status_code == 409 and out.json()["finished"] and out.json()["complete"]
    session = PlaySession.objects.get()
    assert session.completed_at is not None and session.ended_at is not None
    assert "CODE-123" in client.get(f"/play/{experiment.slug}/results/").content.decode()


def test_an_open_study_that_runs_out_says_thank_you_and_never_loops() -> None:
    experiment = study("open", images=1)
    client = Client()
    enter(client, experiment)
    session_id = start_session(client, experiment)
    play_round(client, session_id)
    api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    page = client.get(f"/play/{experiment.slug}/results/").content.decode()
    assert "thank you for helping" in page and "Keep playing" not in page
    # A new visit opens a new session, which ends at once: nothing is left to play.
    again = start_session(client, experiment)
    assert again != session_id
    out = api(client, "/api/rounds/", {"session_id": again, "client_round_id": str(uuid.uuid4())})
    assert out.status_code == 409 and out.json()["finished"]


def test_the_pilot_link_plays_a_draft_study_and_marks_its_data_as_pilot() -> None:
    experiment = study(status=Experiment.Status.DRAFT)
    client = Client()
    assert client.get(f"/play/{experiment.slug}/").status_code == 404
    page = client.get(f"/play/{experiment.slug}/", {"pilot": experiment.pilot_token})
    assert page.status_code == 200 and b"Pilot" in page.content
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    session_id = start_session(client, experiment)
    play_round(client, session_id)
    assert PlaySession.objects.get().is_pilot
    assert Client().get(f"/play/{experiment.slug}/", {"pilot": "wrong-token"}).status_code == 404


def test_a_paused_study_says_so_and_starts_no_round() -> None:
    experiment = study()
    client = Client()
    enter(client, experiment)
    session_id = start_session(client, experiment)
    experiment.status = Experiment.Status.PAUSED
    experiment.save()
    assert b"paused" in client.get(f"/play/{experiment.slug}/").content
    refused = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())})
    assert refused.status_code == 409 and "paused" in refused.json()["error"]


def test_a_round_shows_the_label_to_reveal() -> None:
    experiment = study()
    client = Client()
    enter(client, experiment)
    session_id = start_session(client, experiment)
    state = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": str(uuid.uuid4())}).json()
    assert state["label"] == Round.objects.get().image.category.name


def test_panel_ids_never_reach_an_export_row(tmp_path) -> None:
    experiment = study("prolific")
    client = Client()
    enter(client, experiment, PANEL_URLS["prolific"])
    session_id = start_session(client, experiment)
    play_round(client, session_id)
    from maps.exports import ROUND_FIELDS

    assert not [field for field in ROUND_FIELDS if any(key in field for key in ("prolific", "mturk", "sona"))]


def test_the_leaderboard_ranks_only_this_studys_rounds() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from games.services.summary import summary
    from games.tests.factories import PartnerModelVersionFactory, PlaySessionFactory, RoundFactory

    study_a, study_b = study(), study()
    star = PlaySessionFactory(experiment=study_a)
    version = PartnerModelVersionFactory(partner=study_a.partner)
    now = timezone.now() + timedelta(seconds=1)  # after the round's own start, stamped on insert
    RoundFactory(session=star, status="scored", outcome="correct", points=90, partner_version=version,
                 submitted_at=now, scored_at=now)  # fmt: skip
    newcomer = PlaySessionFactory(experiment=study_b)
    board_a = summary(participant=star.participant, experiment=study_a)
    board_b = summary(participant=newcomer.participant, experiment=study_b)
    assert [row["username"] for row in board_a["leaderboard"]] == [star.participant.username]
    assert board_a["score"] == 90 and board_a["you"]["rank"] == 1
    assert board_b["leaderboard"] == [] and board_b["score"] == 0
