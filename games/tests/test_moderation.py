"""Moderation actions: a reason each, nothing deleted, an audit row each, and propagation everywhere."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from games.models import Image, ModerationAction, Participant, PlaySession, Round
from games.services import moderation
from games.services.sampling import choose_image
from games.services.summary import summary
from games.tests.factories import ExperimentFactory, ImageFactory, PlaySessionFactory, UserFactory
from games.tests.http_player import painted
from games.tests.moderation_data import scored_round, staff_in
from maps.exports import Window, select_rounds
from maps.models import ClickMap, Export

Kind = ModerationAction.Kind


@pytest.fixture
def moderator(db: None) -> object:
    return staff_in("moderators", "mona")


@pytest.fixture
def world(db: None) -> dict:
    """Two participants in one experiment with two scored rounds each, on the same two images."""
    experiment = ExperimentFactory()
    images = [ImageFactory(image_set=experiment.image_set) for _ in range(2)]
    sessions = [PlaySessionFactory(experiment=experiment) for _ in range(2)]
    rounds = [
        scored_round(session=s, image=image, points=40 + 10 * i) for i, s in enumerate(sessions) for image in images
    ]
    return {"experiment": experiment, "images": images, "sessions": sessions, "rounds": rounds}


def _actions(world: dict) -> dict[str, tuple[Callable, dict]]:
    """Each service with a target from the world, by the kind it logs."""
    participant, session = world["sessions"][0].participant, world["sessions"][0]
    round_, image = world["rounds"][0], world["images"][0]
    return {
        Kind.SHADOW_BAN: (moderation.shadow_ban, {"participant": participant}),
        Kind.UNBAN: (moderation.unban, {"participant": participant}),
        Kind.INVALIDATE_ROUND: (moderation.invalidate_round, {"round_": round_}),
        Kind.RESTORE_ROUND: (moderation.restore_round, {"round_": round_}),
        Kind.INVALIDATE_SESSION: (moderation.invalidate_session, {"session": session}),
        Kind.RESTORE_SESSION: (moderation.restore_session, {"session": session}),
        Kind.RETIRE_IMAGE: (moderation.retire_image, {"image": image}),
        Kind.REJECT_IMAGE: (moderation.reject_image, {"image": image}),
        Kind.RESTORE_IMAGE: (moderation.restore_image, {"image": image}),
    }


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("reason", ["", "   \n\t"])
def test_every_action_without_a_reason_is_refused_and_changes_nothing(world, moderator, kind, reason) -> None:
    action, target = _actions(world)[kind]
    with pytest.raises(moderation.ReasonRequired, match="reason is required"):
        action(actor=moderator, reason=reason, **target)
    assert not ModerationAction.objects.exists()
    assert Round.objects.filter(invalidated_at__isnull=False).count() == 0
    assert not Participant.objects.exclude(ban_state="none").exists()


def test_only_moderators_may_act(world, moderator) -> None:
    researcher = staff_in("researchers", "rita")
    for actor in (researcher, UserFactory()):
        with pytest.raises(PermissionDenied):
            moderation.invalidate_round(actor=actor, round_=world["rounds"][0], reason="looks like a bot")
    assert not ModerationAction.objects.exists()


def test_the_audit_log_lists_every_action_with_who_what_and_why(world, moderator) -> None:
    for kind, (action, target) in _actions(world).items():
        action(actor=moderator, reason=f"why {kind}", **target)
    log = list(ModerationAction.objects.order_by("pk"))
    assert [entry.kind for entry in log] == list(Kind)
    assert all(entry.actor == moderator and entry.reason == f"why {entry.kind}" for entry in log)
    assert all(entry.details["changed"] for entry in log)
    assert log[0].details["rounds_affected"] == 2 and log[0].participant == world["sessions"][0].participant
    assert Round.objects.count() == 4  # never deleted


def test_shadow_ban_hides_everything_from_maps_counts_and_leaderboard_but_not_from_the_player(
    world, moderator, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    built: list[tuple[int, int]] = []
    monkeypatch.setattr(
        "maps.services.enqueue_map_build",
        lambda *, experiment_id, image_id, coalesce: built.append((experiment_id, image_id, coalesce)),
    )
    cheater = world["sessions"][1].participant  # the higher scorer
    experiment = world["experiment"]
    before = summary(participant=world["sessions"][0].participant, experiment=experiment)
    assert before["leaderboard"][0]["username"] == cheater.username

    with django_capture_on_commit_callbacks(execute=True):
        entry = moderation.shadow_ban(actor=moderator, participant=cheater, reason="replayed paths")
    assert entry.details == {"changed": True, "rounds_affected": 2, "maps_rebuilt": 2, "participants_rescored": 1}
    assert sorted(built) == sorted((experiment.pk, image.pk, False) for image in world["images"])  # at once
    assert [image.valid_rounds for image in Image.objects.order_by("pk")] == [1, 1]
    honest_view = summary(participant=world["sessions"][0].participant, experiment=experiment)
    assert cheater.username not in [row["username"] for row in honest_view["leaderboard"]]
    own_view = summary(participant=cheater, experiment=experiment)
    assert own_view["score"] == 100 and own_view["you"]["rank"] == 1  # their own page looks as before

    again = moderation.shadow_ban(actor=moderator, participant=cheater, reason="second look")
    assert again.details["changed"] is False and ModerationAction.objects.count() == 2
    moderation.unban(actor=moderator, participant=cheater, reason="appeal upheld")
    assert summary(participant=cheater, experiment=experiment)["leaderboard"] == before["leaderboard"]
    assert [image.valid_rounds for image in Image.objects.order_by("pk")] == [2, 2]


def test_session_restore_brings_back_only_what_the_session_invalidation_took(world, moderator) -> None:
    session = world["sessions"][0]
    first, second = session.rounds.order_by("pk")
    moderation.invalidate_round(actor=moderator, round_=first, reason="off-object clicks")
    entry = moderation.invalidate_session(actor=moderator, session=session, reason="bot timing")
    assert entry.details["rounds_affected"] == [second.pk]
    assert Participant.objects.get(pk=session.participant_id).score == 0
    with pytest.raises(moderation.ActionRefused, match="restore the session"):
        moderation.restore_round(actor=moderator, round_=second, reason="oops")
    moderation.restore_session(actor=moderator, session=session, reason="false alarm")
    first.refresh_from_db(), second.refresh_from_db()
    assert first.invalidated_at is not None and second.invalidated_at is None
    assert PlaySession.objects.get(pk=session.pk).invalidated_at is None
    assert Participant.objects.get(pk=session.participant_id).score == second.points


def test_retired_and_rejected_images_are_not_served_and_a_restored_one_is(world, moderator) -> None:
    experiment, (kept, dropped) = world["experiment"], world["images"]
    newcomer = Participant.objects.create(username="new-player")
    moderation.retire_image(actor=moderator, image=kept, reason="enough data")
    moderation.reject_image(actor=moderator, image=dropped, reason="strange label")
    assert choose_image(experiment=experiment, participant=newcomer, rng=random.Random(1)) is None
    entry = moderation.restore_image(actor=moderator, image=dropped, reason="label is fine")
    assert entry.details["previous_state"] == "rejected" and Image.objects.get(pk=dropped.pk).state_changed_at
    assert choose_image(experiment=experiment, participant=newcomer, rng=random.Random(1)) == dropped


def test_the_sampler_tops_up_an_image_that_lost_its_rounds(world, moderator) -> None:
    experiment, (first, second) = world["experiment"], world["images"]
    experiment.target_maps_per_image = 2
    experiment.save()
    newcomer = Participant.objects.create(username="new-player")
    moderation.invalidate_round(actor=moderator, round_=Round.objects.filter(image=second).first(), reason="bot")
    assert Image.objects.get(pk=second.pk).valid_rounds == 1
    assert {choose_image(experiment=experiment, participant=newcomer).pk for _ in range(5)} == {second.pk}
    assert first.pk  # the other image, still at target, waits


# --- Over HTTP, with a real partner and eager workers: what "Done when" asks. ---------------------


def _maps(experiment_id: int) -> dict[int, tuple[bytes, bytes, str]]:
    """The experiment's non-empty maps as (counts .npy bytes, heatmap .npy bytes, rounds digest).

    A map built from no rounds (all zeros) is the same as no map: scoring asks for a build after
    any valid round, even one whose player is shadow-banned, and that build finds nothing to add.
    """

    def read(field: object) -> bytes:
        return field.open("rb").read() if field else b""

    return {
        m.image_id: (read(m.counts), read(m.heatmap), m.rounds_digest)
        for m in ClickMap.objects.filter(experiment_id=experiment_id, round_count__gt=0)
    }


def _valid_export_rounds(experiment: object) -> set[int]:
    export = Export(experiment=experiment, filters={"quality": "valid"})
    window = Window(start=None, end=None, cutoff=timezone.now() + timedelta(minutes=1), after=None)
    return set(select_rounds(export=export, window=window).values_list("pk", flat=True))


def _play(player: object, clicks: int = 30) -> tuple[list[int], list[dict]]:
    """Play one round as the browser does; returns the status codes and bodies of its requests."""
    start = player.start_round()
    round_id = start.json()["client_round_id"]
    answers = [start, player.upload(round_id, painted(clicks)), player.guess(round_id, 10)]
    answers += [player.submit(round_id, "wrong", clicks), player.round(round_id)]
    return [a.status_code for a in answers], [sorted(a.json()) for a in answers]


@pytest.mark.django_db(transaction=True)
def test_a_shadow_banned_player_gets_normal_answers_and_changes_no_map_leaderboard_or_export(
    new_player, partner, eager_tasks, demo
) -> None:
    honest, cheater = new_player(), new_player()
    honest_shapes = _play(honest)
    _play(cheater)
    cheater_participant = PlaySession.objects.get(pk=cheater.session_id).participant
    moderation.shadow_ban(actor=staff_in("moderators"), participant=cheater_participant, reason="bot")
    maps, exported = _maps(demo.pk), _valid_export_rounds(demo)
    leaderboard = honest.http.get(f"/api/play/{demo.slug}/summary/").json()["leaderboard"]
    assert cheater_participant.username not in [row["username"] for row in leaderboard]

    assert _play(cheater) == honest_shapes  # same status codes, same keys, as anyone
    summary_answer = cheater.http.get(f"/api/play/{demo.slug}/summary/")
    cheater_participant.refresh_from_db()
    # Their own rank reads as if they counted: one more than the honest players ahead of them.
    ahead = Participant.objects.filter(ban_state="none", score__gt=cheater_participant.score).count()
    assert summary_answer.status_code == 200 and summary_answer.json()["you"]["rank"] == ahead + 1
    assert Round.objects.filter(participant=cheater_participant, status="scored").count() == 2
    assert _maps(demo.pk) == maps
    assert _valid_export_rounds(demo) == exported
    assert honest.http.get(f"/api/play/{demo.slug}/summary/").json()["leaderboard"] == leaderboard


@pytest.mark.django_db(transaction=True)
def test_invalidating_then_restoring_a_session_returns_maps_to_the_exact_previous_bytes(
    new_player, partner, eager_tasks, demo
) -> None:
    players = [new_player() for _ in range(2)]
    for player in players:
        _play(player, clicks=40)
        _play(player, clicks=25)
    before = _maps(demo.pk)
    assert before and all(counts for counts, _, _ in before.values())
    session = PlaySession.objects.get(pk=players[0].session_id)
    moderator = staff_in("moderators")

    moderation.invalidate_session(actor=moderator, session=session, reason="periodic timing")
    during = _maps(demo.pk)
    touched = set(session.rounds.values_list("image_id", flat=True))
    assert all(during.get(pk) != before[pk] for pk in touched)
    assert _valid_export_rounds(demo).isdisjoint(session.rounds.values_list("pk", flat=True))

    moderation.restore_session(actor=moderator, session=session, reason="a fast but honest player")
    assert _maps(demo.pk) == before
    assert list(ModerationAction.objects.order_by("pk").values_list("kind", flat=True)) == [
        Kind.INVALIDATE_SESSION,
        Kind.RESTORE_SESSION,
    ]
