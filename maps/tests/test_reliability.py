"""Split-half reliability on simulated players, the stored report, and plateau retirement.

Design: docs/maps-and-reliability.md.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

from devtools.clicks import demo_masks, simulate
from games.models import Image
from games.tests.factories import ExperimentFactory, ImageFactory
from maps.heatmap import MapParameters
from maps.models import ClickMap, ReliabilityReport
from maps.reliability import mean_iou_rows as auc_rows
from maps.reliability import spearman_rows, split_half
from maps.services import build_click_map, compute_reliability, retire_converged_images
from maps.tests.factories import scored_round


@pytest.fixture(scope="module")
def reliability_by_participants() -> dict[int, object]:
    """Ceiling and floor of 10 demo images with 6 and with 20 simulated players each."""
    masks = demo_masks(10)
    results = {}
    for participants in (6, 20):
        sim = simulate(masks, participants, clicks=60, seed=participants)
        results[participants] = split_half(
            sim.owner_image,
            sim.click_owner,
            sim.xs,
            sim.ys,
            MapParameters(),
            iterations=5,
            rng=np.random.default_rng(0),
        )
    return results


@pytest.mark.parametrize("participants", [6, 20])
def test_ceiling_is_clearly_above_the_floor(reliability_by_participants, participants: int) -> None:
    result = reliability_by_participants[participants]
    assert result.ceiling_spearman.mean() > result.floor_spearman.mean() + 0.3
    assert result.ceiling_auc.mean() > 2 * result.floor_auc.mean()
    assert (result.ceiling_spearman > result.floor_spearman).mean() >= 0.9  # image by image, not just on average


def test_ceiling_grows_with_participants(reliability_by_participants) -> None:
    few, many = reliability_by_participants[6], reliability_by_participants[20]
    assert many.ceiling_spearman.mean() > few.ceiling_spearman.mean() + 0.02
    assert many.ceiling_auc.mean() > few.ceiling_auc.mean() + 0.1


def test_agreement_measures_on_known_maps() -> None:
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))[None]
    assert spearman_rows(ramp, ramp)[0] == pytest.approx(1.0)
    assert spearman_rows(ramp, ramp[:, :, ::-1])[0] == pytest.approx(-1.0)
    assert auc_rows(ramp, ramp)[0] == pytest.approx(1.0)
    assert auc_rows(ramp, ramp[:, :, ::-1])[0] < 0.35
    assert np.isnan(spearman_rows(np.zeros_like(ramp), ramp)[0])


def test_split_half_needs_two_images_with_enough_participants() -> None:
    with pytest.raises(ValueError, match="two or more images"):
        split_half(np.array([0, 0, 0, 0]), np.array([0, 1]), np.array([1, 2]), np.array([1, 2]), MapParameters(), 1,
                   np.random.default_rng(0))  # fmt: skip


@pytest.mark.django_db
def test_compute_reliability_stores_per_image_and_overall_values() -> None:
    experiment = ExperimentFactory()
    masks, sim = demo_masks(3), simulate(demo_masks(3), 6, clicks=30, seed=3)
    images = [ImageFactory(image_set=experiment.image_set) for _ in masks]
    for owner, image_index in enumerate(sim.owner_image):
        mine = sim.click_owner == owner
        clicks = list(zip(sim.xs[mine].tolist(), sim.ys[mine].tolist(), strict=True))
        scored_round(experiment=experiment, image=images[image_index], clicks=clicks)
    few = ImageFactory(image_set=experiment.image_set)  # three participants: skipped
    for _ in range(3):
        scored_round(experiment=experiment, image=few, clicks=[(1, 1), (2, 2)])
    for image in [*images, few]:
        build_click_map(experiment_id=experiment.pk, image_id=image.pk)

    report = compute_reliability(experiment_id=experiment.pk, iterations=3, seed=7)
    assert report.image_count == 3 and report.parameters["iterations"] == 3 and report.parameters["seed"] == 7
    assert report.ceiling_spearman > report.floor_spearman and report.ceiling_auc > report.floor_auc
    per_image = {row[0]: row for row in report.parameters["per_image"]}
    assert set(per_image) == {image.pk for image in images} and all(row[1] == 6 for row in per_image.values())
    for click_map in ClickMap.objects.filter(image__in=images):
        assert click_map.split_half_spearman == per_image[click_map.image_id][2]
        assert click_map.split_half_auc == per_image[click_map.image_id][4]
    assert ClickMap.objects.get(image=few).split_half_spearman is None

    again = compute_reliability(experiment_id=experiment.pk, iterations=3, seed=7)  # seeded: the same numbers
    assert again.parameters["per_image"] == report.parameters["per_image"]
    out = io.StringIO()
    call_command("compute_reliability", "--experiment", experiment.slug, "--iterations", "2", stdout=out)
    assert "overall (3 images)" in out.getvalue() and images[0].name in out.getvalue()
    assert ReliabilityReport.objects.count() == 3


@pytest.mark.django_db
def test_reliability_needs_two_images() -> None:
    with pytest.raises(ValueError, match="two or more images"):
        compute_reliability(experiment_id=ExperimentFactory().pk)


@pytest.mark.django_db
def test_images_whose_reliability_has_plateaued_retire() -> None:
    experiment = ExperimentFactory(retire_on_plateau=True, plateau_tolerance=0.01)
    settled, improving, small = (ImageFactory(image_set=experiment.image_set) for _ in range(3))
    trail = [(100 + i, 120 + i // 2) for i in range(40)]
    for _ in range(8):  # everyone paints the same trail: halves agree perfectly at any size, gain 0
        scored_round(experiment=experiment, image=settled, clicks=trail)
    sim = simulate(demo_masks(1), 8, clicks=60, seed=8)  # eight simulated players: still gaining
    for owner in range(8):
        mine = sim.click_owner == owner
        scored_round(
            experiment=experiment,
            image=improving,
            clicks=list(zip(sim.xs[mine].tolist(), sim.ys[mine].tolist(), strict=True)),
        )
    for _ in range(7):  # too few to judge
        scored_round(experiment=experiment, image=small, clicks=trail)
    for image in (settled, improving, small):
        build_click_map(experiment_id=experiment.pk, image_id=image.pk)

    assert retire_converged_images(experiment_id=experiment.pk) == 1
    states = dict(Image.objects.values_list("pk", "state"))
    assert (states[settled.pk], states[improving.pk], states[small.pk]) == ("retired", "active", "active")
    assert Image.objects.get(pk=settled.pk).state_changed_at is not None
    assert retire_converged_images(experiment_id=experiment.pk) == 0  # retired images are not checked again

    experiment.retire_on_plateau = False
    experiment.save()
    Image.objects.filter(pk=settled.pk).update(state=Image.State.ACTIVE)
    assert retire_converged_images(experiment_id=experiment.pk) == 0


def test_the_floor_uses_the_partner_it_is_given_and_only_scored_images_are_scored() -> None:
    """Image 1 repeats image 0's trails, image 2 is another object: the floor of 0 follows its partner."""
    sim = simulate(demo_masks(2), 8, clicks=40, seed=4)
    first = sim.owner_image == 0
    owners = np.concatenate([sim.owner_image, np.full(first.sum(), 2)])  # image 2 := a copy of image 0
    copied = np.isin(sim.click_owner, np.flatnonzero(first))
    renumber = np.cumsum(first) - 1 + len(sim.owner_image)  # copied participants get new numbers
    click_owner = np.concatenate([sim.click_owner, renumber[sim.click_owner[copied]]])
    xs, ys = np.concatenate([sim.xs, sim.xs[copied]]), np.concatenate([sim.ys, sim.ys[copied]])
    rng = np.random.default_rng(0)
    twin = split_half(
        owners, click_owner, xs, ys, MapParameters(), 30, rng, scored=np.array([0]), partners=np.array([2])
    )
    other = split_half(
        owners, click_owner, xs, ys, MapParameters(), 30, rng, scored=np.array([0]), partners=np.array([1])
    )
    assert twin.ceiling_spearman.shape == other.floor_spearman.shape == (1,)
    # The copy's half is split independently, so it shares participants with image 0's half: at least the ceiling.
    assert twin.floor_spearman[0] > twin.ceiling_spearman[0] - 0.02
    assert other.floor_spearman[0] < twin.floor_spearman[0] - 0.2
    with pytest.raises(ValueError, match="another image"):
        split_half(owners, click_owner, xs, ys, MapParameters(), 1, rng, scored=np.array([0]), partners=np.array([0]))


@pytest.mark.django_db
def test_images_scored_in_several_chunks_keep_partners_from_other_chunks(monkeypatch) -> None:
    experiment = ExperimentFactory()
    masks = demo_masks(4)
    sim = simulate(masks, 6, clicks=30, seed=5)
    images = [ImageFactory(image_set=experiment.image_set) for _ in masks]
    for owner, image_index in enumerate(sim.owner_image):
        mine = sim.click_owner == owner
        scored_round(experiment=experiment, image=images[image_index],
                     clicks=list(zip(sim.xs[mine].tolist(), sim.ys[mine].tolist(), strict=True)))  # fmt: skip
    whole = compute_reliability(experiment_id=experiment.pk, iterations=4, seed=1)
    monkeypatch.setattr("maps.services.CHUNK", 2)  # one scored image per chunk, with its partner beside it
    chunked = compute_reliability(experiment_id=experiment.pk, iterations=4, seed=1)
    assert [row[:2] for row in chunked.parameters["per_image"]] == [row[:2] for row in whole.parameters["per_image"]]
    assert all(row[2] > row[3] for row in chunked.parameters["per_image"])  # each ceiling above its floor
    assert abs(chunked.ceiling_spearman - whole.ceiling_spearman) < 0.05
