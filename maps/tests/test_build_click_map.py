"""Building maps from stored clicks: the selection rule, bit-for-bit rebuilds, invalidation, and enqueuing."""

from __future__ import annotations

import hashlib
import io
import posixpath
from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from PIL import Image as PILImage

from clickme_site.celery import app as celery_app
from games.models import Participant, Round
from games.services.scoring import _record_score
from games.tests.factories import ExperimentFactory, ImageFactory, ParticipantFactory, RoundFactory
from maps import pending_builds
from maps.heatmap import MapParameters, click_map, count_histograms
from maps.models import ClickMap
from maps.services import (
    SELECTION,
    build_click_map,
    counts_array,
    enqueue_map_build,
    heatmap_array,
    map_rounds,
    overlay_png,
    rebuild_maps,
)
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db


def trails(count: int, seed: int = 0, bubbles: int = 30) -> list[list[tuple[int, int]]]:
    """Random bubble trails, one per participant."""
    rng = np.random.default_rng(seed)
    return [[(int(x), int(y)) for x, y in rng.integers(0, 256, (bubbles, 2))] for _ in range(count)]


def expected_map(rounds_clicks: list[list[tuple[int, int]]], params: MapParameters | None = None):
    """Summed counts and map computed straight from the clicks, bypassing the database."""
    xs = np.array([x for clicks in rounds_clicks for x, _ in clicks])
    ys = np.array([y for clicks in rounds_clicks for _, y in clicks])
    counts = count_histograms(np.zeros_like(xs), xs, ys, 1)[0]
    return counts, click_map(counts, len(rounds_clicks), params or MapParameters())


def file_bytes(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


def test_map_is_built_from_the_rounds_clicks(experiment, image) -> None:
    clicks = trails(6)
    rounds = [scored_round(experiment=experiment, image=image, clicks=trail) for trail in clicks]
    result = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    counts, heatmap = expected_map(clicks)
    assert np.array_equal(counts_array(result), counts) and counts_array(result).dtype == np.int32
    assert np.array_equal(heatmap_array(result), heatmap) and heatmap_array(result).dtype == np.float32
    assert (result.participant_count, result.round_count, result.click_count) == (6, 6, 180)
    ids = ",".join(str(r.pk) for r in sorted(rounds, key=lambda r: r.pk))
    assert result.rounds_digest == hashlib.sha256(ids.encode()).hexdigest()
    assert result.is_ready and result.parameters == {**MapParameters().as_dict(), "selection": SELECTION}


def test_rebuilding_gives_the_same_bytes_and_rewrites_nothing(experiment, image) -> None:
    for trail in trails(5, seed=1):
        scored_round(experiment=experiment, image=image, clicks=trail)
    first = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    names, data = (first.counts.name, first.heatmap.name), (file_bytes(first.counts), file_bytes(first.heatmap))
    again = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert (again.counts.name, again.heatmap.name) == names
    ClickMap.objects.all().delete()  # from scratch: only the raw clicks are left
    call_command("rebuild_maps", "--experiment", experiment.slug, "--no-progress", stdout=io.StringIO())
    rebuilt = ClickMap.objects.get()
    assert (rebuilt.counts.name, rebuilt.heatmap.name) == names
    assert (file_bytes(rebuilt.counts), file_bytes(rebuilt.heatmap)) == data


def test_batched_rebuild_equals_building_each_map(experiment) -> None:
    images = [ImageFactory(image_set=experiment.image_set) for _ in range(3)]
    for i, image in enumerate(images):
        for trail in trails(5 + i, seed=10 + i):
            scored_round(experiment=experiment, image=image, clicks=trail)
    singles = {
        image.pk: file_bytes(build_click_map(experiment_id=experiment.pk, image_id=image.pk).heatmap)
        for image in images
    }
    ClickMap.objects.all().delete()
    assert rebuild_maps(experiment_id=experiment.pk) == 3
    assert {m.image_id: file_bytes(m.heatmap) for m in ClickMap.objects.all()} == singles


def test_a_map_with_too_few_participants_keeps_counts_but_is_not_ready(experiment, image) -> None:
    clicks = trails(3, seed=2)
    for trail in clicks:
        scored_round(experiment=experiment, image=image, clicks=trail)
    result = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert np.array_equal(counts_array(result), expected_map(clicks)[0])
    assert not result.heatmap and not result.is_ready and result.participant_count == 3
    with pytest.raises(ValueError, match="no heatmap"):
        heatmap_array(result)
    plain = PILImage.open(io.BytesIO(overlay_png(result)))
    assert plain.size == (256, 256) and plain.getpixel((5, 5)) == (120, 80, 40)  # the factory's crop colour


def test_overlay_colours_the_clicked_region(experiment, image) -> None:
    for _ in range(5):
        scored_round(experiment=experiment, image=image, clicks=[(200, 50), (201, 50)])
    overlay = PILImage.open(io.BytesIO(overlay_png(build_click_map(experiment_id=experiment.pk, image_id=image.pk))))
    assert overlay.format == "PNG" and overlay.size == (256, 256)
    assert overlay.getpixel((10, 240)) == (120, 80, 40) and overlay.getpixel((200, 50)) != (120, 80, 40)


def test_invalidating_a_round_gives_the_map_without_it_and_restoring_the_same_bytes(experiment, image) -> None:
    clicks = trails(7, seed=3)
    rounds = [scored_round(experiment=experiment, image=image, clicks=trail) for trail in clicks]
    original = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    before = (original.heatmap.name, file_bytes(original.counts), file_bytes(original.heatmap))
    # The same data where the round never existed, in a twin experiment on the same images.
    twin = ExperimentFactory(image_set=experiment.image_set)
    for trail in clicks[:3] + clicks[4:]:
        scored_round(experiment=twin, image=image, clicks=trail)
    never = build_click_map(experiment_id=twin.pk, image_id=image.pk)

    Round.objects.filter(pk=rounds[3].pk).update(invalidated_at=timezone.now())
    without = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert (file_bytes(without.counts), file_bytes(without.heatmap)) == (
        file_bytes(never.counts),
        file_bytes(never.heatmap),
    )
    assert without.participant_count == 6 and without.heatmap.name != before[0]

    Round.objects.filter(pk=rounds[3].pk).update(invalidated_at=None)
    restored = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert (restored.heatmap.name, file_bytes(restored.counts), file_bytes(restored.heatmap)) == before
    # The files a build replaces stay until the next build of the map, which collects them.
    storage, folder = restored.heatmap.storage, posixpath.dirname(before[0])
    assert len(storage.listdir(folder)[1]) == 4 and storage.exists(without.heatmap.name)
    build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert {f"{folder}/{name}" for name in storage.listdir(folder)[1]} == {restored.counts.name, before[0]}


def test_selection_rule(experiment, image) -> None:
    later = timezone.now() + timedelta(hours=2)
    kept = []
    # One participant's first submission had a single bubble: the next one that counts is theirs.
    again = ParticipantFactory()
    scored_round(experiment=experiment, image=image, participant=again, clicks=[(1, 1)], submitted_at=later)
    kept.append(scored_round(experiment=experiment, image=image, participant=again, clicks=[(2, 2), (3, 3)],
                             submitted_at=later + timedelta(minutes=1)))  # fmt: skip
    # Another played twice: the earlier submission counts, whichever row was created first.
    twice = ParticipantFactory()
    scored_round(experiment=experiment, image=image, participant=twice, clicks=[(9, 9)] * 3,
                 submitted_at=later + timedelta(minutes=9))  # fmt: skip
    kept.append(scored_round(experiment=experiment, image=image, participant=twice, clicks=[(4, 4)] * 3,
                             submitted_at=later + timedelta(minutes=8)))  # fmt: skip
    kept.append(scored_round(experiment=experiment, image=image, clicks=[(5, 5), (6, 6)]))
    # What never counts: skipped, invalidated, shadow-banned, invalidated session, unscored, other experiments.
    scored_round(experiment=experiment, image=image, clicks=[(7, 7)] * 4, outcome=Round.Outcome.SKIPPED)
    invalid = scored_round(experiment=experiment, image=image, clicks=[(7, 7)] * 4)
    Round.objects.filter(pk=invalid.pk).update(invalidated_at=timezone.now())
    banned = ParticipantFactory(ban_state=Participant.BanState.SHADOW, banned_at=timezone.now())
    scored_round(experiment=experiment, image=image, participant=banned, clicks=[(7, 7)] * 4)
    bad_session = scored_round(experiment=experiment, image=image, clicks=[(7, 7)] * 4)
    type(bad_session.session).objects.filter(pk=bad_session.session_id).update(invalidated_at=timezone.now())
    RoundFactory(experiment=experiment, image=image)  # still playing
    scored_round(experiment=ExperimentFactory(image_set=experiment.image_set), image=image, clicks=[(7, 7)] * 4)

    first_counting = MapParameters(selection_recipe="first-counting")  # the recipe this test was written for
    assert set(map_rounds(experiment_id=experiment.pk, image_id=image.pk, params=first_counting)) == set(kept)
    result = build_click_map(experiment_id=experiment.pk, image_id=image.pk, params=first_counting)
    assert (result.participant_count, result.click_count) == (3, 7)
    counts = counts_array(result)
    assert counts[4, 4] == 3 and counts[2, 2] == counts[5, 5] == 1 and counts[7, 7] == counts[9, 9] == counts[1, 1] == 0


def test_min_clicks_is_a_recorded_parameter(experiment, image) -> None:
    scored_round(experiment=experiment, image=image, clicks=[(1, 1), (2, 2)])
    params = MapParameters(min_clicks=3, min_participants=1)
    assert build_click_map(experiment_id=experiment.pk, image_id=image.pk, params=params).participant_count == 0
    scored_round(experiment=experiment, image=image, clicks=[(1, 1), (2, 2), (3, 3)])
    rebuilt = build_click_map(experiment_id=experiment.pk, image_id=image.pk)  # keeps the recorded parameters
    assert rebuilt.participant_count == 1 and rebuilt.is_ready and rebuilt.parameters["min_clicks"] == 3


@pytest.mark.parametrize(("claimed", "enqueued"), [(Round.Outcome.CORRECT, True), (Round.Outcome.SKIPPED, False)])
def test_scoring_a_round_enqueues_its_map_on_commit(
    experiment, image, broker_tasks, django_capture_on_commit_callbacks, claimed, enqueued
) -> None:
    round_ = RoundFactory(experiment=experiment, image=image, status=Round.Status.SUBMITTED, outcome=claimed,
                          client_outcome=claimed, submitted_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    pending_builds.release(experiment.pk, image.pk)
    with (
        mock.patch("maps.tasks.build_click_map_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        _record_score(round_, [], "v1", None, None)
        delay.assert_not_called()  # not before the score is committed
    assert settings.MAP_BUILD_COALESCE_S == 0  # the default: a build per round, at once
    assert delay.call_args_list == ([mock.call(experiment.pk, image.pk)] if enqueued else [])


def test_a_broker_outage_is_logged_not_raised(experiment, image, broker_tasks) -> None:
    pending_builds.release(experiment.pk, image.pk)
    with (
        mock.patch("maps.tasks.build_click_map_task.delay", side_effect=BrokerError("no broker")),
        mock.patch("maps.services.logger.exception") as log,
    ):
        enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    assert "could not rebuild the map" in log.call_args.args[0]


def test_the_task_builds_the_map_end_to_end(experiment, image) -> None:
    for trail in trails(5, seed=4):
        scored_round(experiment=experiment, image=image, clicks=trail)
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    try:
        enqueue_map_build(experiment_id=experiment.pk, image_id=image.pk)
    finally:
        celery_app.conf.task_always_eager = previous
    assert ClickMap.objects.get(experiment=experiment, image=image).is_ready


def test_the_lab_recipe_leaves_out_a_participant_whose_first_submission_was_short(experiment, image) -> None:
    short_first = ParticipantFactory()
    scored_round(experiment=experiment, image=image, participant=short_first, clicks=[(1, 1)])
    scored_round(experiment=experiment, image=image, participant=short_first, clicks=[(2, 2), (3, 3)])
    others = [scored_round(experiment=experiment, image=image, clicks=[(4, 4), (5, 5)]) for _ in range(2)]
    lab = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    assert set(map_rounds(experiment_id=experiment.pk, image_id=image.pk)) == set(others)
    assert lab.parameters["selection_recipe"] == "lab" and lab.participant_count == 2


def test_changing_an_experiments_recipe_rebuilds_all_its_maps_and_new_maps_follow(experiment, image) -> None:
    short_first = ParticipantFactory()
    scored_round(experiment=experiment, image=image, participant=short_first, clicks=[(1, 1)])
    scored_round(experiment=experiment, image=image, participant=short_first, clicks=[(2, 2), (3, 3)])
    build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    out = io.StringIO()
    call_command("rebuild_maps", "--experiment", experiment.slug, "--selection-recipe", "first-counting",
                 "--min-participants", "1", "--no-progress", stdout=out)  # fmt: skip
    assert "'first-counting' selection recipe" in out.getvalue()
    rebuilt = ClickMap.objects.get(experiment=experiment, image=image)
    assert rebuilt.participant_count == 1 and rebuilt.is_ready
    assert rebuilt.parameters["selection_recipe"] == "first-counting" and rebuilt.parameters["min_participants"] == 1
    later = ImageFactory(image_set=experiment.image_set)
    fresh = build_click_map(experiment_id=experiment.pk, image_id=later.pk)  # a new map takes the experiment's
    assert fresh.parameters["selection_recipe"] == "first-counting" and fresh.parameters["min_participants"] == 1
    call_command("rebuild_maps", "--experiment", experiment.slug, "--no-progress", stdout=out)  # keeps them
    assert ClickMap.objects.get(pk=rebuilt.pk).parameters["selection_recipe"] == "first-counting"


def test_maps_built_before_recipes_had_names_keep_the_first_counting_rule(experiment, image) -> None:
    import importlib

    from django.apps import apps

    old_rule = (
        "scored rounds that count (not invalidated, not skipped, session not invalidated, participant not "
        "shadow-banned) with at least min_clicks bubbles; the first such submission per participant and image"
    )
    legacy = {key: value for key, value in MapParameters().as_dict().items() if key != "selection_recipe"}
    assert MapParameters.from_dict({**legacy, "selection": old_rule}).selection_recipe == "first-counting"
    click_map = ClickMap.objects.create(
        experiment=experiment, image=image, parameters={**legacy, "selection": old_rule}
    )
    migration = importlib.import_module("maps.migrations.0002_name_selection_recipes")
    migration.name_recipes(apps, None)
    assert ClickMap.objects.get(pk=click_map.pk).parameters["selection_recipe"] == "first-counting"
    migration.unname_recipes(apps, None)
    assert "selection_recipe" not in ClickMap.objects.get(pk=click_map.pk).parameters
