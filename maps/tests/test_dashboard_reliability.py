"""The dashboard's reliability card and gallery say what their numbers are, warn, and explain missing maps."""

from __future__ import annotations

import pytest
from django.urls import reverse

from games.tests.factories import ImageFactory
from maps.models import ReliabilityReport
from maps.reliability import OVERLAPS
from maps.services import build_click_map, reliability_warnings
from maps.tests.factories import scored_round
from maps.tests.world import make_world

pytestmark = pytest.mark.django_db


def report_of(experiment, ceiling: float, floor: float, *, overlap: str = "iou-auc") -> ReliabilityReport:
    report = ReliabilityReport(
        experiment=experiment, image_count=10, ceiling_spearman=ceiling, floor_spearman=floor, ceiling_auc=0.4,
        floor_auc=0.1,
        parameters={"reliability": {"recipe": "lab", "overlap": overlap, "overlap_definition": OVERLAPS[overlap]},
                    "selection_recipe": "lab", "per_image": []},
    )  # fmt: skip
    report.parameters["warnings"] = reliability_warnings(report)
    report.save()
    return report


def page_of(client, world) -> str:
    client.force_login(world.owner)
    return client.get(reverse("maps:dashboard-experiment", args=[world.experiment.slug])).content.decode()


def test_a_ceiling_below_its_floor_is_warned_about_and_metrics_are_named(client) -> None:
    world = make_world()
    report = report_of(world.experiment, 0.663, 0.671)
    assert report.parameters["warnings"] == ["the split-half ceiling (Spearman 0.663) is not above the floor (0.671)"]
    page = page_of(client, world)
    assert 'id="reliability-warning"' in page and "is not above the floor (0.671)" in page
    assert "IoU AUC 0.400 against 0.100" in page and "ceiling IoU AUC" in page and "ceiling AUC" not in page
    assert "<code>lab</code>" in page


def test_a_ceiling_clearly_above_its_floor_gets_no_warning_and_close_ones_do() -> None:
    world = make_world()
    assert reliability_warnings(report_of(world.experiment, 0.80, 0.30)) == []
    close = reliability_warnings(report_of(world.experiment, 0.33, 0.30))
    assert close == ["the split-half ceiling (Spearman 0.330) is within 0.05 of the floor (0.300)"]


def test_the_imagenet_reference_line_is_drawn_only_for_imagenet_images(client) -> None:
    world = make_world()  # images named image_0001: not ImageNet
    report_of(world.experiment, 0.8, 0.3)
    assert "ImageNet ClickMe" not in page_of(client, world)
    world.image.name = "n01440764/ILSVRC2012_val_00000293.JPEG"
    world.image.save()
    page = page_of(client, world)
    assert "published ImageNet ClickMe ceiling ρ 0.658" in page and 'class="reference"' in page


def test_the_gallery_says_why_an_image_has_no_map_yet(client) -> None:
    world = make_world()
    waiting = ImageFactory(image_set=world.experiment.image_set, name="waiting_0001")
    unplayed = ImageFactory(image_set=world.experiment.image_set, name="unplayed_0001")
    for offset in range(3):
        scored_round(experiment=world.experiment, image=waiting, clicks=[(10 + offset, 10), (11 + offset, 10)])
    build_click_map(experiment_id=world.experiment.pk, image_id=waiting.pk)
    page = page_of(client, world)
    assert page.count('class="meta why-no-map"') == 2 and unplayed.name in page
    assert "No map yet: 3 of the 5 participants a map needs." in page
    assert "No map yet: 0 of the 5 participants a map needs." in page
