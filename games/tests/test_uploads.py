"""Bubble uploads over HTTP: retries never duplicate, and bad input is refused whole."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from games.models import Click, Round
from games.services import rounds
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db(transaction=True)


def stored() -> list[tuple[int, int, int, int]]:
    return list(Click.objects.order_by("seq").values_list("seq", "x", "y", "t_ms"))


def test_a_retried_batch_is_stored_once(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    clicks = painted(20)
    assert player.upload(round_id, clicks[:10]).json()["next_seq"] == 10
    assert player.upload(round_id, clicks[:10]).json()["next_seq"] == 10  # the same batch again
    assert player.upload(round_id, clicks[5:20], start_seq=5).json()["next_seq"] == 20  # overlapping
    assert stored() == [(seq, x, y, t) for seq, (x, y, t) in enumerate(clicks)]


def test_duplicate_requests_racing_each_other_store_each_bubble_once(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    clicks = painted(30)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: player.upload(round_id, clicks), range(6)))
    assert {answer.status_code for answer in answers} == {200}
    assert len(stored()) == 30 and Round.objects.get().bubble_count == 30


def test_a_gap_is_refused_with_where_to_resume(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    answer = player.upload(round_id, painted(30)[20:], start_seq=20)
    assert answer.status_code == 409 and answer.json()["next_seq"] == 10
    assert len(stored()) == 10


def test_a_batch_that_contradicts_stored_bubbles_is_refused(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    changed = painted(10)
    changed[3][0] += 1
    assert player.upload(round_id, changed).status_code == 409
    assert stored() == [(seq, x, y, t) for seq, (x, y, t) in enumerate(painted(10))]


BAD_BATCHES = {
    "x outside the image": [[256, 10, 0]],
    "negative y": [[10, -1, 0]],
    "not integers": [[10.5, 10, 0]],
    "two values": [[10, 10]],
    "faster than painting": [[10, 10, 0], [11, 10, 20]],
    "teleporting": [[10, 10, 0], [60, 60, 50]],
    "time going backwards": [[10, 10, 100], [12, 10, 50]],
    "after the time limit": [[10, 10, 7001]],
    "too many in one batch": painted(201),
}


@pytest.mark.parametrize("problem", BAD_BATCHES)
def test_bad_bubbles_get_a_400_naming_the_problem_and_store_nothing(new_player, problem: str) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(3))
    answer = player.upload(round_id, painted(3) + BAD_BATCHES[problem], start_seq=0)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]
    assert len(stored()) == 3


def test_malformed_json_oversized_bodies_and_missing_fields_are_refused(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    path = f"/api/rounds/{round_id}/clicks/"
    headers = {**player.csrf(), "Content-Type": "application/json"}
    assert player.http.post(path, content=b"{not json", headers=headers).status_code == 400
    huge = json.dumps({"start_seq": 0, "clicks": [[1, 1, 0]] * 10_000}).encode()
    assert player.http.post(path, content=huge, headers=headers).status_code == 413
    assert player.post(path, {"clicks": [[1, 1, 0]]}).json()["error"].startswith("start_seq")
    assert player.submit(round_id, "won", 0).status_code == 400
    assert "clicks" in player.upload(round_id, []).json()["error"]
    assert stored() == []


def test_bubbles_after_submission_are_refused(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(5))
    assert player.submit(round_id, "skipped", 5).status_code == 200
    assert player.upload(round_id, painted(10)[5:], start_seq=5).status_code == 409
    assert len(stored()) == 5


def test_submitting_before_all_bubbles_arrived_asks_for_the_rest(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    answer = player.submit(round_id, "correct", 20)
    assert answer.status_code == 409 and answer.json()["next_seq"] == 10
    assert Round.objects.get().status == "playing"


def test_a_second_submit_changes_nothing_and_answers_the_round_as_stored(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    first = player.submit(round_id, "skipped", 10)
    submitted_at = Round.objects.get().submitted_at
    again = player.submit(round_id, "correct", 10)
    assert first.status_code == again.status_code == 200 and again.json()["status"] == "submitted"
    assert again.json() == first.json()
    assert Round.objects.values_list("client_outcome", "submitted_at").get() == ("skipped", submitted_at)


def test_racing_submits_of_a_round_submit_it_once(new_player, monkeypatch) -> None:
    scoring: list[tuple] = []
    monkeypatch.setattr(rounds, "enqueue_on_commit", lambda *args, **kwargs: scoring.append(args))
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(10))
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: player.submit(round_id, "wrong", 10), range(6)))
    assert {answer.status_code for answer in answers} == {200}
    assert {answer.json()["status"] for answer in answers} == {"submitted"}
    assert len(scoring) == 1 and Round.objects.get().status == "submitted"
