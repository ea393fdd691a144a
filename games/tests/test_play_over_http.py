"""A participant plays over real HTTP, the partner guesses, and only their own rounds are theirs."""

from __future__ import annotations

import pytest

from games.models import Click, PartnerGuess, Round
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_round_is_played_guessed_and_scored_by_the_real_partner(new_player, partner, eager_tasks) -> None:
    player = new_player()
    state = player.start_round().json()
    assert state["status"] == "playing" and state["next_seq"] == 0 and state["round_number"] == 1
    assert player.http.get(state["image_url"]).headers["content-type"] == "image/png"
    round_id = state["client_round_id"]
    assert player.upload(round_id, painted(20)).json() == {"stored": 20, "next_seq": 20}
    guess = player.guess(round_id, 20)
    assert guess.status_code == 200, guess.text
    assert guess.json()["query_index"] == 1 and len(guess.json()["guesses"]) == 5
    submitted = player.submit(round_id, "wrong", 20)
    assert submitted.status_code == 200, submitted.text
    scored = player.round(round_id).json()
    assert scored["status"] == "scored" and scored["points"] is not None
    round_ = Round.objects.get(client_round_id=round_id)
    assert round_.partner_version.version == "test-1"
    assert list(PartnerGuess.objects.filter(round=round_).values_list("query_index", "bubble_count")) == [
        (0, 10),
        (1, 20),
    ]


def test_a_reload_resumes_the_same_round(new_player) -> None:
    player = new_player()
    first = player.start_round()
    round_id = first.json()["client_round_id"]
    player.upload(round_id, painted(10))
    again = player.start_round(client_round_id=round_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["next_seq"] == 10 and again.json()["image_url"] == first.json()["image_url"]


def test_reopening_the_game_resumes_the_unfinished_session(new_player) -> None:
    player = new_player()
    first_session = player.session_id
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    player.submit(round_id, "wrong", 10)  # a round with work in it: it counts towards completion
    again = player.start_session().json()
    assert again["session_id"] == first_session and again["rounds_done"] == 1


def test_a_session_plays_its_number_of_rounds_then_completes(new_player, partner, eager_tasks) -> None:
    player = new_player()
    images = set()
    for _ in range(2):
        state = player.start_round().json()
        images.add(state["image_url"])
        player.submit(state["client_round_id"], "skipped", 0)
    assert len(images) == 2
    assert player.start_round().status_code == 409
    summary = player.http.get("/api/play/demo/summary/").json()
    assert summary["rounds_done"] == 2 and summary["completion"] is not None


def test_a_participant_can_never_reach_another_participants_round(new_player, live_server) -> None:
    owner, other = new_player(), new_player()
    state = owner.start_round().json()
    round_id = state["client_round_id"]
    owner.upload(round_id, painted(10))
    assert other.round(round_id).status_code == 404
    assert other.http.get(state["image_url"]).status_code == 404
    assert other.upload(round_id, painted(10), start_seq=10).status_code == 404
    assert other.submit(round_id, "correct", 10).status_code == 404
    assert other.guess(round_id, 10).status_code == 404
    assert Click.objects.count() == 10 and Round.objects.get().status == "playing"


def test_the_api_refuses_callers_without_a_participant_cookie_or_csrf_token(new_player, live_server) -> None:
    import httpx

    anonymous = httpx.post(f"{live_server.url}/api/rounds/", json={"session_id": 1, "client_round_id": "x"})
    assert anonymous.status_code == 403
    player = new_player()
    no_token = player.http.post("/api/rounds/", json={"session_id": player.session_id})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]


def test_parallel_starts_of_a_session_return_one_round(new_player) -> None:
    from concurrent.futures import ThreadPoolExecutor

    player = new_player()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: player.start_round(), range(6)))
    assert {answer.status_code for answer in answers} <= {200, 201}
    assert len({answer.json()["client_round_id"] for answer in answers}) == 1
    assert Round.objects.count() == 1


def test_a_second_tab_starting_a_round_gets_the_round_already_being_played(new_player) -> None:
    player = new_player()
    first = player.start_round().json()
    player.upload(first["client_round_id"], painted(10))
    other_tab = player.start_round()  # a new client id, as a second tab makes
    assert other_tab.status_code == 200
    assert other_tab.json()["client_round_id"] == first["client_round_id"] and other_tab.json()["next_seq"] == 10
