"""A guess can carry the bubbles painted since the last upload: one request per query point.

The bubbles are stored first, by the same rules as a clicks upload, and stay stored whatever the
partner answers; the answer says where the next batch starts (`next_seq`).
"""

from __future__ import annotations

import pytest

from games.models import Click, Round
from games.services import rounds
from games.tests.http_player import painted

pytestmark = pytest.mark.django_db(transaction=True)


def stored() -> list[tuple[int, int, int, int]]:
    return list(Click.objects.order_by("seq").values_list("seq", "x", "y", "t_ms"))


def test_a_guess_carrying_new_bubbles_stores_them_then_answers(new_player, partner) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    clicks = painted(20)
    first = player.guess(round_id, 10, start_seq=0, clicks=clicks[:10])
    assert first.status_code == 200, first.text
    assert first.json()["next_seq"] == 10 and first.json()["query_index"] == 0 and len(first.json()["guesses"]) == 5
    second = player.guess(round_id, 20, start_seq=10, clicks=clicks[10:])
    assert second.json()["next_seq"] == 20 and second.json()["query_index"] == 1
    assert stored() == [(seq, x, y, t) for seq, (x, y, t) in enumerate(clicks)]
    assert player.submit(round_id, "wrong", 20).status_code == 200


def test_a_retried_guess_does_not_store_its_bubbles_twice(new_player, partner) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    clicks = painted(10)
    for _ in range(2):
        assert player.guess(round_id, 10, start_seq=0, clicks=clicks).json()["next_seq"] == 10
    assert len(stored()) == 10 and Round.objects.get().bubble_count == 10


def test_when_the_partner_is_down_the_bubbles_are_kept_and_the_503_says_where_to_resume(new_player, settings) -> None:
    settings.MODEL_SERVER_URL = "http://127.0.0.1:1"  # nothing listens there
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    answer = player.guess(round_id, 10, start_seq=0, clicks=painted(10))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["next_seq"] == 10 and "partner" in answer.json()["error"]
    assert len(stored()) == 10


def test_a_carried_batch_that_breaks_the_painting_rule_is_refused_and_stores_nothing(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    teleporting = [*painted(9), [250, 250, 450]]
    answer = player.guess(round_id, 10, start_seq=0, clicks=teleporting)
    assert answer.status_code == 400 and answer.json()["error"]
    assert stored() == []


def test_a_carried_batch_with_a_gap_is_a_409_naming_where_to_resend_from(new_player) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    answer = player.guess(round_id, 20, start_seq=10, clicks=painted(20)[10:])
    assert answer.status_code == 409 and answer.json()["next_seq"] == 0
    assert stored() == []


@pytest.mark.parametrize("half", [{"start_seq": 0}, {"clicks": [[10, 10, 0]]}])
def test_start_seq_and_clicks_come_together_or_not_at_all(new_player, half: dict) -> None:
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    answer = player.guess(round_id, 10, **half)
    assert answer.status_code == 400 and "start_seq and clicks" in answer.json()["error"]


def test_a_carried_batch_overlapping_the_stored_bubbles_asks_the_partner_about_each_stored_bubble_in_order(
    new_player, partner, monkeypatch
) -> None:
    asked: list[list[tuple[int, int]]] = []
    item = rounds.GuessItem
    monkeypatch.setattr(rounds, "GuessItem", lambda **fields: asked.append(list(fields["bubbles"])) or item(**fields))
    player = new_player()
    round_id = player.start_round().json()["client_round_id"]
    clicks = painted(25)
    player.upload(round_id, clicks[:15])
    carried = player.guess(round_id, 20, start_seq=5, clicks=clicks[5:25])  # 5..14 stored already, 15..24 new
    assert carried.status_code == 200, carried.text
    assert carried.json()["next_seq"] == 25 and len(stored()) == 25
    assert player.guess(round_id, 10).status_code == 200  # read from the stored bubbles
    assert asked == [[(x, y) for x, y, _ in clicks[:20]], [(x, y) for x, y, _ in clicks[:10]]]
