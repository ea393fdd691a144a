"""Scoring takes the answers the partner gave the live guesses instead of asking it again.

Played over HTTP against a real partner server; what reaches the partner is counted at the client
edge (PartnerClient.guess): live guesses ask "interactive", scoring asks "bulk".
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.core.cache import cache

from games.models import PartnerGuess, Round
from games.services import remembered_guesses
from games.services.scoring import score_round
from games.tests.factories import RoundFactory
from games.tests.http_player import painted
from model_server.client import Guess, PartnerClient
from model_server.demo_data import DEMO_PARTNER

pytestmark = pytest.mark.django_db(transaction=True)

BUBBLES = 40  # four query points, every 10 bubbles (the demo's query_every)
REDIS_DOWN = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}  # fmt: skip


class PartnerCalls:
    """Every guess request the site and the workers send the partner, with what it answered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int], list[Guess]]] = []

    def record(self, priority: str, items: list, answers: list[Guess]) -> None:
        self.calls.append((priority, [len(item.bubbles) for item in items], answers))

    @property
    def scoring(self) -> list[list[int]]:
        """The bubble counts of each request scoring sent."""
        return [counts for priority, counts, _ in self.calls if priority == "bulk"]

    def live_answers(self) -> dict[int, Guess]:
        """What the live guesses were told, by bubble count."""
        return {counts[0]: answers[0] for priority, counts, answers in self.calls if priority != "bulk"}


@pytest.fixture
def asked(monkeypatch) -> PartnerCalls:
    calls, real = PartnerCalls(), PartnerClient.guess

    def guess(self: PartnerClient, model: str, items: list, **options: object) -> list[Guess]:
        answers = real(self, model, items, **options)
        calls.record(str(options.get("priority", "interactive")), items, answers)
        return answers

    monkeypatch.setattr(PartnerClient, "guess", guess)
    return calls


def play(player, *, guessed_at: tuple[int, ...]) -> str:
    """Paint a round and ask for the partner's guess at some of its query points; return its id."""
    round_id = player.start_round().json()["client_round_id"]
    player.upload(round_id, painted(BUBBLES))
    for count in guessed_at:
        answer = player.guess(round_id, count)
        assert answer.status_code == 200, answer.text
    return round_id


def submit(player, round_id: str) -> Round:
    answer = player.submit(round_id, "wrong", BUBBLES)
    assert answer.status_code == 200 and answer.json()["status"] == "scored", answer.text
    return Round.objects.get(client_round_id=round_id)


def outcome(round_: Round) -> tuple[tuple, list[dict]]:
    """What scoring stored: the round's outcome and points, its participant's score, and its guesses."""
    round_.refresh_from_db()
    round_.participant.refresh_from_db()
    fields = ("outcome", "recognised_at_query", "recognised_at_ms", "points", "partner_version_id", "status")
    rows = PartnerGuess.objects.filter(round=round_).order_by("query_index")
    return (
        (*(getattr(round_, name) for name in fields), round_.participant.score, round_.participant.high_score),
        list(rows.values("query_index", "bubble_count", "partner_version__version", "classes", "probabilities",
                         "target_rank", "is_correct")),
    )  # fmt: skip


def versions_of(round_: Round) -> set[str]:
    return set(PartnerGuess.objects.filter(round=round_).values_list("partner_version__version", flat=True))


def test_a_round_whose_live_guesses_were_all_made_is_scored_without_asking_the_partner_again(
    new_player, partner, eager_tasks, asked
) -> None:
    round_ = submit(player := new_player(), play(player, guessed_at=(10, 20, 30, 40)))
    assert asked.scoring == []
    counts = round_.guesses.order_by("query_index").values_list("bubble_count", flat=True)
    assert list(counts) == [10, 20, 30, 40]
    assert versions_of(round_) == {"test-1"} and round_.partner_version.version == "test-1"
    assert remembered_guesses.recall(round_, range(4)) == {}, "a scored round's answers are forgotten"


def test_a_round_with_some_live_guesses_asks_the_partner_only_for_the_rest(
    new_player, partner, eager_tasks, asked
) -> None:
    round_ = submit(player := new_player(), play(player, guessed_at=(10, 30)))
    assert asked.scoring == [[20, 40]]
    assert round_.guesses.count() == 4 and versions_of(round_) == {"test-1"}


def test_the_score_from_live_guesses_is_the_score_the_same_answers_give_when_the_partner_is_asked_again(
    new_player, partner, eager_tasks, asked, monkeypatch
) -> None:
    round_ = submit(player := new_player(), play(player, guessed_at=(10, 20, 30, 40)))
    assert asked.scoring == []
    from_live_guesses = outcome(round_)

    # Score the same round as before this change: nothing remembered, the partner asked at every
    # point, answering what it told the live guesses, cut to scoring's k as the server cuts a batch
    # (model_server/inference.py).
    told = asked.live_answers()
    Round.objects.filter(pk=round_.pk).update(status=Round.Status.SUBMITTED)
    PartnerGuess.objects.filter(round=round_).delete()
    asked_again: list[list[int]] = []

    def same_answers(self: PartnerClient, model: str, items: list, *, top_k: int, **options: object) -> list[Guess]:
        asked_again.append([len(item.bubbles) for item in items])
        live = [told[len(item.bubbles)] for item in items]
        return [Guess(g.classes[:top_k], g.indices[:top_k], g.probabilities[:top_k], g.model_version) for g in live]

    monkeypatch.setattr(PartnerClient, "guess", same_answers)
    score_round(round_id=round_.pk)

    assert asked_again == [[10, 20, 30, 40]]
    assert outcome(round_) == from_live_guesses


def test_scoring_from_live_guesses_agrees_with_the_partner_asked_again(new_player, partner, eager_tasks, asked) -> None:
    round_ = submit(player := new_player(), play(player, guessed_at=(10, 20, 30, 40)))
    (head, rows) = outcome(round_)
    Round.objects.filter(pk=round_.pk).update(status=Round.Status.SUBMITTED)
    PartnerGuess.objects.filter(round=round_).delete()
    score_round(round_id=round_.pk)  # nothing remembered now: the real partner is asked at every point
    (head_again, rows_again) = outcome(round_)
    assert asked.scoring == [[10, 20, 30, 40]]
    assert head_again == head
    # Float32 sums in batches of one and of four differ in their last bit (~3e-8), so a probability
    # rounded to six places may differ by one in the last place; the ranking and the rest do not.
    for row, again in zip(rows, rows_again, strict=True):
        assert {**row, "probabilities": None} == {**again, "probabilities": None}
        assert again["probabilities"] == pytest.approx(row["probabilities"], abs=2e-6)


def second_version(tmp_path: Path) -> Path:
    """A checkpoint of the same partner, other weights, version test-2, loaded and made live on the server."""
    import torch

    from model_server import demo_data
    from model_server.config import preset
    from model_server.network import gala_small, save_checkpoint

    torch.manual_seed(1)
    path = tmp_path / "partner-2.pt"
    save_checkpoint(path, gala_small(), preset("gala_small"), classes=list(demo_data.CLASSES), version="test-2")
    return path


def make_live(partner, checkpoint: Path) -> None:
    with PartnerClient(partner.url, timeout=60) as client:
        assert client.load_version(DEMO_PARTNER, str(checkpoint), version="test-2")["active_version"] == "test-2"


def test_a_version_going_live_after_the_live_guesses_has_every_point_asked_again(
    new_player, partner, eager_tasks, asked, tmp_path
) -> None:
    round_id = play(player := new_player(), guessed_at=(10, 20))
    make_live(partner, second_version(tmp_path))
    round_ = submit(player, round_id)
    # The rest answered by test-2, not the version of the remembered answers: all again, by test-2.
    assert asked.scoring == [[30, 40], [10, 20, 30, 40]]
    assert versions_of(round_) == {"test-2"} and round_.partner_version.version == "test-2"


def test_live_guesses_by_two_versions_have_every_point_asked_again_at_once(
    new_player, partner, eager_tasks, asked, tmp_path
) -> None:
    round_id = play(player := new_player(), guessed_at=(10, 20))
    make_live(partner, second_version(tmp_path))
    for count in (30, 40):
        assert player.guess(round_id, count).status_code == 200
    round_ = submit(player, round_id)
    assert asked.scoring == [[10, 20, 30, 40]]
    assert versions_of(round_) == {"test-2"}


def test_with_the_cache_unreachable_rounds_are_played_and_scored_by_asking_the_partner(
    new_player, partner, eager_tasks, asked, settings
) -> None:
    player = new_player()  # consented while the cache was up
    settings.CACHES = REDIS_DOWN
    round_ = submit(player, play(player, guessed_at=(10, 20, 30, 40)))  # each guess answered all the same
    assert asked.scoring == [[10, 20, 30, 40]]
    assert round_.guesses.count() == 4


def test_with_the_cache_lost_between_the_guesses_and_scoring_the_partner_is_asked_at_every_point(
    new_player, partner, eager_tasks, asked, settings
) -> None:
    round_id = play(player := new_player(), guessed_at=(10, 20, 30, 40))
    settings.CACHES = REDIS_DOWN
    round_ = submit(player, round_id)
    assert asked.scoring == [[10, 20, 30, 40]]
    assert round_.guesses.count() == 4 and round_.status == Round.Status.SCORED


def test_scoring_a_round_again_changes_nothing_and_asks_nothing(new_player, partner, eager_tasks, asked) -> None:
    round_ = submit(player := new_player(), play(player, guessed_at=(10, 30)))
    scored = outcome(round_)
    assert player.submit(str(round_.client_round_id), "wrong", BUBBLES).json()["status"] == "scored"
    score_round(round_id=round_.pk)
    assert outcome(round_) == scored and asked.scoring == [[20, 40]]
    assert Round.objects.get(pk=round_.pk).scoring_attempts == 1


def test_answers_remembered_for_another_round_under_the_same_id_are_not_used() -> None:
    round_ = RoundFactory()
    round_.settings["top_k"] = 1  # the live guess asks for five; scoring keeps the study's k
    answer = Guess(["cat", "dog"], [3, 1], [0.6, 0.3], "v1")
    remembered_guesses.remember(round_, 0, answer)
    assert remembered_guesses.recall(round_, [0, 1]) == {0: Guess(["cat"], [3], [0.6], "v1")}
    round_.client_round_id = uuid.uuid4()  # the same primary key after a database reset, the cache kept
    assert remembered_guesses.recall(round_, [0, 1]) == {}


def test_an_entry_of_another_shape_is_not_used(caplog) -> None:
    round_ = RoundFactory()
    cache.set(remembered_guesses._key(round_, 0), ("v1", ["cat"]))
    assert remembered_guesses.recall(round_, [0]) == {}
    assert "could not read the live guesses" in caplog.text
