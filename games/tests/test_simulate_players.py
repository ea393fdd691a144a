"""`simulate_players` against a live site and a real partner server process: every round stored and scored."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from celery._state import _set_task_join_will_block
from django.core.management import CommandError

from devtools.players import MaskLookup, PlayedRound, check_database
from games.models import Experiment, PartnerGuess, Round
from games.tests.simulated_runs import number, simulate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _reset_celery_join_flag() -> Iterator[None]:
    """Celery's eager mode marks "inside a task" in one process-wide flag, saved and restored
    around each task; eager tasks running at once in the live server's threads can leave it set,
    and then any later `result.get()` in this process raises. Put it back after each test."""
    yield
    _set_task_join_will_block(False)


def test_players_play_through_http_and_every_round_is_scored(
    live_server, partner_process: str, eager_tasks: None, demo: Experiment, settings
) -> None:
    # Shorter rounds than the default 7 s keep the test quick, and show that players follow the
    # rules the round was started under rather than the defaults.
    demo.time_limit_ms = 2000
    demo.save()
    # Two cores shared with the rest of the suite: a live guess can exceed the 1.5 s budget.
    settings.MODEL_SERVER_TIMEOUT_MS = 10_000
    report = simulate(live_server, "--players", "3", "--rounds", "2")

    assert number(report, "rounds stored (submitted)") == 6
    assert number(report, "rounds scored") == 6
    assert number(report, "errors") == 0
    assert "database check: 6 of 6 submitted rounds are scored" in report
    for endpoint in ("clicks", "guess", "submit"):
        assert re.search(rf"^{endpoint}\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", report, re.M), endpoint

    rounds = Round.objects.filter(status=Round.Status.SCORED)
    on_object = bubbles = 0
    assert rounds.count() == 6 and rounds.values("participant").distinct().count() == 3
    for round_ in rounds:
        queries = round_.bubble_count // round_.settings["query_every"]
        assert round_.partner_version is not None
        assert list(round_.guesses.order_by("query_index").values_list("query_index", flat=True)) == list(
            range(queries)
        )
        assert round_.session.pointer_type in ("mouse", "touch")
        assert round_.clicks.filter(t_ms__gt=2000).count() == 0
        mask = MaskLookup.read(round_.image)
        on_object += sum(bool(mask[y, x]) for x, y in round_.clicks.values_list("x", "y"))
        bubbles += round_.bubble_count
    assert on_object >= 0.7 * bubbles, "the players paint the object they were shown"

    # The check notices a scored round that lost a partner guess.
    round_ = rounds.filter(bubble_count__gte=10).first()
    played = [PlayedRound(str(round_.client_round_id), bubbles=round_.bubble_count, status="scored")]
    assert check_database(played).problems == []
    PartnerGuess.objects.filter(round=round_, query_index=0).delete()
    (problem,) = check_database(played).problems
    assert "partner guesses for" in problem


def test_errors_make_the_command_fail(live_server, demo: Experiment) -> None:
    with pytest.raises(CommandError, match="1 errors"):
        simulate(live_server, "--players", "1", "--rounds", "1", "--experiment", "no-such-study")
