"""The review queue in the admin: statistics, replay data, actions that need a reason, roles, audit log."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from games.models import ModerationAction, Participant, PlaySession, Round
from games.moderation_stats import histogram, intervals
from games.tests.factories import ExperimentFactory, ImageFactory, PlaySessionFactory, RoundFactory, UserFactory
from games.tests.moderation_data import flag, scored_round, staff_in

pytestmark = pytest.mark.django_db
Kind = ModerationAction.Kind

OBJECT_MOVES = [
    ("participant", "shadow_ban"), ("participant", "unban"),
    ("playsession", "invalidate_session"), ("playsession", "restore_session"),
    ("playsession", "shadow_ban"), ("playsession", "unban"),
    ("round", "invalidate_round"), ("round", "restore_round"),
    ("image", "retire_image"), ("image", "reject_image"), ("image", "restore_image"),
]  # fmt: skip


@pytest.fixture
def world() -> dict:
    """A flagged session and a quiet one, two scored rounds each, in one experiment."""
    experiment = ExperimentFactory()
    images = [ImageFactory(image_set=experiment.image_set) for _ in range(2)]
    quiet, flagged = (PlaySessionFactory(experiment=experiment) for _ in range(2))
    rounds = [scored_round(session=s, image=image) for s in (quiet, flagged) for image in images]
    flag(flagged, rounds[2], "periodic_timing")
    flag(flagged, None, "too_many_rounds")
    return {"experiment": experiment, "images": images, "quiet": quiet, "flagged": flagged, "rounds": rounds}


@pytest.fixture
def mod_client(client):
    client.force_login(staff_in("moderators", "mona"))
    return client


def _targets(world: dict) -> dict:
    flagged = world["flagged"]
    return {"participant": flagged.participant, "playsession": flagged, "round": world["rounds"][2],
            "image": world["images"][0]}  # fmt: skip


def test_the_queue_lists_flagged_sessions_first_with_their_statistics(world, mod_client) -> None:
    page = mod_client.get(reverse("admin:games_playsession_changelist")).content.decode()
    rows = re.findall(r'name="_selected_action" value="(\d+)"', page)
    assert [int(pk) for pk in rows] == [world["flagged"].pk, world["quiet"].pk]
    assert "periodic_timing" in page and "too_many_rounds" in page and "timing CV 0.01" in page
    assert page.count('class="timing-histogram"') == 2 and "100%" in page  # all recognised
    assert "invalidate session… (asks for a reason)" in page


def test_the_change_page_has_statistics_a_replay_and_a_button_per_action(world, mod_client) -> None:
    session = world["flagged"]
    page = mod_client.get(reverse("admin:games_playsession_change", args=[session.pk])).content.decode()
    data = json.loads(re.search(r'<script id="replay-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert [item["round"] for item in data] == [r.pk for r in world["rounds"][2:]]
    assert len(data[0]["clicks"]) == 30 and data[0]["clicks"][1] == [65, 60, 50]
    assert "games/replay.js" in page and "agreement with consensus: no map ready yet" in page
    for move in ("invalidate_session", "restore_session", "shadow_ban", "unban"):
        assert reverse("admin:games_playsession_moderate", args=[session.pk, move]) in page


@pytest.mark.parametrize(("model", "move"), OBJECT_MOVES)
@pytest.mark.parametrize("reason", ["", "   "])
def test_every_button_refuses_to_act_without_a_reason(world, mod_client, model, move, reason) -> None:
    url = reverse(f"admin:games_{model}_moderate", args=[_targets(world)[model].pk, move])
    assert mod_client.get(url).status_code == 200
    answer = mod_client.post(url, {"reason": reason, "apply": "1"})
    assert answer.status_code == 200 and "This field is required." in answer.content.decode()
    assert not ModerationAction.objects.exists()


def test_each_button_with_a_reason_acts_and_the_audit_log_lists_every_action(world, mod_client) -> None:
    for model, move in OBJECT_MOVES:
        url = reverse(f"admin:games_{model}_moderate", args=[_targets(world)[model].pk, move])
        answer = mod_client.post(url, {"reason": f"because {model} {move}", "apply": "1"})
        assert answer.status_code == 302, answer.content.decode()[:500]
    assert ModerationAction.objects.count() == len(OBJECT_MOVES)
    log = mod_client.get(reverse("admin:games_moderationaction_changelist") + "?all=").content.decode()
    assert all(f"because {model} {move}" in log for model, move in OBJECT_MOVES)
    assert all(kind.label in log for kind in Kind)
    assert "mona" in log
    entry = ModerationAction.objects.first()
    assert mod_client.get(reverse("admin:games_moderationaction_add")).status_code == 403
    assert mod_client.post(reverse("admin:games_moderationaction_delete", args=[entry.pk])).status_code == 403


def test_a_bulk_action_asks_for_the_reason_then_acts_on_every_selected_row(world, mod_client) -> None:
    url = reverse("admin:games_playsession_changelist")
    selected = [world["flagged"].pk, world["quiet"].pk]
    ask = mod_client.post(url, {"action": "invalidate_session", "_selected_action": selected})
    assert ask.status_code == 200 and "Reason (required)" in ask.content.decode()
    blank = mod_client.post(url, {"action": "invalidate_session", "_selected_action": selected, "apply": "1",
                                  "reason": " "})  # fmt: skip
    assert "This field is required." in blank.content.decode() and not ModerationAction.objects.exists()
    done = mod_client.post(url, {"action": "invalidate_session", "_selected_action": selected, "apply": "1",
                                 "reason": "a bot farm"}, follow=True)  # fmt: skip
    assert "nvalidate session: done for 2 of 2." in done.content.decode()
    assert PlaySession.objects.filter(invalidated_at__isnull=False).count() == 2
    assert Round.objects.filter(invalidated_at__isnull=False).count() == 4
    assert set(ModerationAction.objects.values_list("kind", "reason")) == {(Kind.INVALIDATE_SESSION, "a bot farm")}


def test_a_refused_action_is_reported_not_raised(world, mod_client) -> None:
    mod_client.post(reverse("admin:games_playsession_moderate", args=[world["flagged"].pk, "invalidate_session"]),
                    {"reason": "bot", "apply": "1"})  # fmt: skip
    url = reverse("admin:games_round_moderate", args=[world["rounds"][2].pk, "restore_round"])
    page = mod_client.post(url, {"reason": "oops", "apply": "1"}, follow=True).content.decode()
    assert "restore the session instead" in page


def test_images_skipped_often_are_surfaced_first(world, mod_client) -> None:
    strange = ImageFactory(image_set=world["experiment"].image_set)
    for _ in range(3):
        RoundFactory(session=PlaySessionFactory(experiment=world["experiment"]), image=strange, outcome="skipped",
                     status="submitted", submitted_at=strange.created_at.replace(year=2100))  # fmt: skip
    page = mod_client.get(reverse("admin:games_image_changelist") + "?skipped=3").content.decode()
    assert re.findall(r'name="_selected_action" value="(\d+)"', page) == [str(strange.pk)]
    assert '<td class="field-skips">3</td>' in page


def test_researchers_see_only_their_experiments_and_cannot_act(world, client) -> None:
    researcher = staff_in("researchers", "rita")
    mine = ExperimentFactory(owner=researcher)
    own_session = PlaySessionFactory(experiment=mine)
    client.force_login(researcher)
    page = client.get(reverse("admin:games_playsession_changelist")).content.decode()
    assert re.findall(r'name="_selected_action" value="(\d+)"', page) == []  # no actions: no checkboxes
    change = "admin:games_playsession_change"
    assert reverse(change, args=[own_session.pk]) in page and reverse(change, args=[world["flagged"].pk]) not in page
    assert client.get(reverse("admin:games_playsession_change", args=[world["flagged"].pk])).status_code == 302
    url = reverse("admin:games_playsession_moderate", args=[own_session.pk, "invalidate_session"])
    assert client.post(url, {"reason": "curious", "apply": "1"}).status_code == 403
    assert client.get(reverse("admin:games_participant_changelist")).status_code == 403
    assert not ModerationAction.objects.exists()


def test_nobody_without_staff_status_reaches_the_admin(world, client) -> None:
    client.force_login(UserFactory(username="player"))
    answer = client.get(reverse("admin:games_playsession_changelist"))
    assert answer.status_code == 302 and "/login/" in answer["Location"]
    assert Participant.objects.filter(ban_state="shadow").count() == 0


def test_the_timing_histogram_shows_a_bots_fixed_period_as_one_bar(world) -> None:
    counts = histogram(intervals(world["flagged"].pk))
    assert sum(counts) == 2 * 29 and counts[2] == 58  # painted(): one bubble every 50 ms exactly
