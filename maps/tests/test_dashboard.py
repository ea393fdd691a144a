"""The dashboard pages: who may see them, and the charts and gallery they draw."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse

from games.models import Experiment
from games.tests.factories import ImageFactory, UserFactory
from maps.dashboard import (
    active_participants_per_day,
    bar_chart,
    experiment_list,
    image_progress,
    rounds_per_day,
)
from maps.tests.export_data import DAY_ONE, DAY_TWO, play_experiment
from maps.tests.world import make_world

pytestmark = pytest.mark.django_db


def test_it_requires_a_login(client) -> None:
    world = make_world(participants=1)
    for url in (reverse("maps:dashboard"), reverse("maps:dashboard-experiment", args=[world.experiment.slug])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("maps:login"))


def test_it_hides_other_researchers_experiments(client) -> None:
    world = make_world(participants=1)
    client.force_login(UserFactory())
    assert world.experiment.slug not in client.get(reverse("maps:dashboard")).content.decode()
    slug, image = world.experiment.slug, world.image.pk
    assert client.get(reverse("maps:dashboard-experiment", args=[slug])).status_code == 404
    assert client.get(reverse("maps:dashboard-image", args=[slug, image])).status_code == 404


def test_it_draws_charts_gallery_and_export_form(client) -> None:
    world = make_world()
    client.force_login(world.owner)
    assert world.experiment.title in client.get(reverse("maps:dashboard")).content.decode()
    page = client.get(reverse("maps:dashboard-experiment", args=[world.experiment.slug])).content.decode()
    for chart in ("images-at-target", "participants-per-image", "rounds-per-day", "participants-per-day"):
        assert f'id="{chart}"' in page
    assert reverse("maps:api-map-png", args=[world.experiment.slug, world.image.pk]) in page
    assert 'value="clicks_parquet"' in page and 'id="dashboard-config"' in page
    crop = client.get(reverse("maps:dashboard-image", args=[world.experiment.slug, world.image.pk]))
    assert crop["Content-Type"] == "image/png"


def test_progress_counts_images_at_target() -> None:
    played = play_experiment()  # five valid participants on each of two images
    played.experiment.target_maps_per_image = 5
    progress = image_progress(played.experiment)
    assert (progress["total"], progress["at_target"], progress["not_started"]) == (2, 2, 0)
    played.experiment.target_maps_per_image = 6
    assert image_progress(played.experiment)["at_target"] == 0


def test_daily_charts_count_rounds_and_participants() -> None:
    played = play_experiment()
    rounds = {bar["label"]: bar["value"] for bar in rounds_per_day(played.experiment).bars}
    people = {bar["label"]: bar["value"] for bar in active_participants_per_day(played.experiment).bars}
    one, two = f"{DAY_ONE:%b} {DAY_ONE.day}", f"{DAY_TWO:%b} {DAY_TWO.day}"
    assert (rounds[one], rounds[two]) == ("6", "8")  # every submitted round, valid or not
    assert (people[one], people[two]) == ("6", "5")
    assert len(rounds) == 7  # at least a week is drawn


def test_bar_chart_scales_to_a_round_number() -> None:
    days = [date(2024, 3, 1) + timedelta(days=n) for n in range(3)]
    chart = bar_chart([(f"{day}", value) for day, value in zip(days, [3, 7, 0], strict=True)], height=200)
    assert [tick["text"] for tick in chart.ticks] == ["0", "5", "10"]
    heights = [bar["height"] for bar in chart.bars]
    assert heights[1] == pytest.approx(heights[0] * 7 / 3, abs=0.2) and heights[2] == 0


def test_the_experiment_list_counts_images_and_rounds() -> None:
    played = play_experiment()
    ImageFactory(image_set=played.experiment.image_set)
    row = experiment_list(Experiment.objects.filter(pk=played.experiment.pk)).get()
    assert (row.image_count, row.round_count) == (3, played.all_rounds)


def test_a_researcher_signs_in_to_the_dashboard(client) -> None:
    researcher = UserFactory()
    researcher.set_password(password := "a long enough password")
    researcher.save()
    response = client.post(reverse("maps:login"), {"username": researcher.username, "password": password})
    assert response["Location"] == reverse("maps:dashboard")
