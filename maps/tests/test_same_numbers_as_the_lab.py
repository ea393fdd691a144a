"""Our maps, ceilings and files agree with serre-lab's recipe, re-implemented here from its documented steps.

The re-implementation follows what human_clickme_data_processing documents and does (prepare_clickmaps.py,
src/utils.py, ceiling_floor_estimate.py), written anew for this test (docs/maps-and-reliability.md):

1. read the CSV (image_path, clicks, user_id); keep the first row per (user_id, image_path);
2. parse clicks as the current parser does: drop ``{}[]"``, strip ``()``, split on ``"), ("``; a
   single pair reads as empty; drop trials with ``len <= min_clicks`` (the lab's configs: 1);
3. keep images with at least ``min_subjects`` trials (the lab's ImageNet configs: 5);
4. a trial's map counts its clicks per pixel; an image's map is the mean of its trials' maps
   convolved twice with the flat 21-pixel disk (normalised to sum 1), zero-padded "same";
5. split halves: a random permutation of the n trials; the first n//2 plus n//2 drawn again from
   them, and the rest plus n//2 drawn from those; each half's map as in 4; both centre-cropped to
   224; Spearman over pixels, and the IoU AUC (min-max with 1e-8, pixels > t for t = 0.05 … 0.95,
   empty union 0, trapezoid rule); the floor takes the second half of one other image, drawn once
   per image; means over iterations, then over images.

Blurring is linear, so step 5 here blurs each trial's map once and averages the blurred maps (the
lab blurs each average); this changes nothing but float rounding, and keeps the test fast.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict
from datetime import timedelta

import h5py
import numpy as np
import pytest
from django.db.models import F
from scipy.ndimage import convolve
from scipy.stats import spearmanr

from devtools.clicks import demo_masks, simulate
from games.models import Click, Round
from games.tests.factories import ExperimentFactory, ImageFactory, ParticipantFactory, UserFactory
from maps.export_jobs import create_export, export_path, run_export
from maps.heatmap import MapParameters
from maps.lab_import import import_lab_csv, parse_clicks
from maps.models import ClickMap
from maps.services import compute_reliability, map_rounds, rebuild_maps
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db

MIN_CLICKS, MIN_SUBJECTS, DIAMETER, CROP = 1, 5, 21, 224  # the lab's ImageNet validation config
PARTICIPANTS = [5, 6, 7, 8, 10, 6]  # per image
ITERATIONS, SEED = 150, 3


# ---- the lab's recipe, re-implemented from its documented steps ------------------------------------------------


def lab_trials(text: str) -> dict[str, list[list[tuple[int, int]]]]:
    """Steps 1–3: the trials of every image that has enough of them, in file order."""
    seen, trials = set(), defaultdict(list)
    for row in csv.DictReader(io.StringIO(text)):
        if (row["user_id"], row["image_path"]) in seen:
            continue
        seen.add((row["user_id"], row["image_path"]))
        pairs = re.sub(r'[{}"\[\]]', "", row["clicks"]).strip("()").split("), (")
        if len(pairs) == 1:
            continue
        points = [tuple(map(int, pair.split(","))) for pair in pairs]
        if len(points) <= MIN_CLICKS:
            continue
        trials[row["image_path"]].append(points)
    return {image: found for image, found in trials.items() if len(found) >= MIN_SUBJECTS}


def lab_disk() -> np.ndarray:
    centre = (DIAMETER - 1) / 2
    y, x = np.mgrid[:DIAMETER, :DIAMETER]
    mask = ((x - centre) ** 2 + (y - centre) ** 2 <= centre**2).astype(np.float64)
    return mask / mask.sum()


def lab_blur(heat: np.ndarray) -> np.ndarray:
    # A direct convolution, as the lab's conv2d is: pixels no click reaches stay exactly 0, and Spearman
    # ranks that large tie as one (an FFT's 1e-17 noise would break it and lower every ρ by about 0.15).
    kernel = lab_disk()
    return convolve(convolve(heat, kernel, mode="constant"), kernel, mode="constant")


def lab_trial_map(points: list[tuple[int, int]]) -> np.ndarray:
    heat = np.zeros((256, 256))
    for x, y in points:
        if 0 <= y < 256 and 0 <= x < 256:
            heat[y, x] += 1
    return heat


def lab_map(trials: list[list[tuple[int, int]]]) -> np.ndarray:
    """Step 4."""
    return lab_blur(np.mean([lab_trial_map(points) for points in trials], axis=0))


def lab_auc(test: np.ndarray, reference: np.ndarray) -> float:
    test = (test - test.min()) / (test.max() - test.min() + 1e-8)
    reference = (reference - reference.min()) / (reference.max() - reference.min() + 1e-8)
    thresholds = np.arange(0.05, 1.0, 0.05)
    scores = []
    for threshold in thresholds:
        a, b = test > threshold, reference > threshold
        union = np.logical_or(a, b).sum()
        scores.append(np.logical_and(a, b).sum() / union if union > 0 else 0.0)
    return float(np.trapezoid(scores, x=thresholds))


def lab_half(n: int, rng: np.random.Generator, draw: random.Random, first: bool) -> list[int]:
    order = rng.permutation(n)
    half = list(order[: n // 2]) if first else list(order[n // 2 :])
    return half + draw.choices(half, k=n // 2)


def lab_split_half(blurred: list[np.ndarray], partners: np.ndarray) -> np.ndarray:
    """Step 5: per image, ceiling ρ, floor ρ, ceiling AUC, floor AUC (blurred[i]: image i's blurred trial maps)."""
    rng, draw = np.random.default_rng(11), random.Random(11)
    top = (256 - CROP) // 2
    window = slice(top, top + CROP)
    results = np.empty((len(blurred), 4))
    for i, maps in enumerate(blurred):
        ceiling, floor = [], []
        other = blurred[partners[i]]
        for _ in range(ITERATIONS):
            n = len(maps)
            order = rng.permutation(n)
            fh, sh = list(order[: n // 2]), list(order[n // 2 :])
            fh, sh = fh + draw.choices(fh, k=n // 2), sh + draw.choices(sh, k=n // 2)
            test, reference = maps[fh].mean(0)[window, window], maps[sh].mean(0)[window, window]
            ceiling.append((spearmanr(test.ravel(), reference.ravel())[0], lab_auc(test, reference)))
            test = maps[lab_half(n, rng, draw, True)].mean(0)[window, window]
            reference = other[lab_half(len(other), rng, draw, False)].mean(0)[window, window]
            floor.append((spearmanr(test.ravel(), reference.ravel())[0], lab_auc(test, reference)))
        (c_rho, c_auc), (f_rho, f_auc) = np.nanmean(ceiling, axis=0), np.nanmean(floor, axis=0)
        results[i] = (c_rho, f_rho, c_auc, f_auc)
    return results


# ---- the same clicks, played in the game --------------------------------------------------------------------


@pytest.fixture(scope="module")
def clicks():
    return simulate(demo_masks(len(PARTICIPANTS)), max(PARTICIPANTS), clicks=40, seed=15)


@pytest.fixture
def played(clicks):
    """Six ImageNet-named images with 5–10 participants; one participant played image 0 twice; a seventh
    image has five participants of whom one first submitted a single bubble (so the lab counts four)."""
    experiment = ExperimentFactory()
    images = [
        ImageFactory(image_set=experiment.image_set, name=f"n0144076{i}/ILSVRC2012_val_{i + 1:08d}.JPEG")
        for i in range(len(PARTICIPANTS))
    ]
    for image_index, (image, count) in enumerate(zip(images, PARTICIPANTS, strict=True)):
        owners = np.flatnonzero(clicks.owner_image == image_index)[:count]
        for number, owner in enumerate(owners):
            mine = clicks.click_owner == owner
            trail = list(zip(clicks.xs[mine].tolist(), clicks.ys[mine].tolist(), strict=True))
            participant = ParticipantFactory()
            scored_round(experiment=experiment, image=image, participant=participant, clicks=trail)
            if image_index == 0 and number == 0:  # a second submission: the lab keeps the first
                scored_round(experiment=experiment, image=image, participant=participant, clicks=[(9, 9)] * 30)
    short = ImageFactory(image_set=experiment.image_set, name="n01440769/ILSVRC2012_val_00000099.JPEG")
    trail = [(100 + i, 100 + i) for i in range(30)]
    first = ParticipantFactory()
    scored_round(experiment=experiment, image=short, participant=first, clicks=[(5, 5)])
    scored_round(experiment=experiment, image=short, participant=first, clicks=trail)
    for _ in range(4):
        scored_round(experiment=experiment, image=short, clicks=trail)
    # The factory submits rounds an hour ahead; an export covers rounds final before it starts: move them back.
    back = timedelta(days=2)
    Round.objects.filter(experiment=experiment).update(
        started_at=F("started_at") - back, submitted_at=F("submitted_at") - back, scored_at=F("scored_at") - back
    )
    rebuild_maps(experiment_id=experiment.pk)
    return experiment, images, short


def export_of(experiment, formats: list[str]):
    export = create_export(experiment=experiment, user=UserFactory(), formats=formats, filters={}, enqueue=False)
    return run_export(export_id=export.pk)


def test_maps_ceilings_and_files_agree_with_the_lab_recipe(played) -> None:
    experiment, images, short = played
    report = compute_reliability(experiment_id=experiment.pk, iterations=ITERATIONS, seed=SEED)
    export = export_of(experiment, ["clicks_lab_csv", "maps_lab_hdf5", "maps_raw_npz", "maps_npz"])
    trials = lab_trials(export_path(export, "clicks_lab.csv").read_text())

    # Who counts: the image whose participant first submitted one bubble has four in the lab's recipe.
    assert set(trials) == {image.name for image in images}
    assert ClickMap.objects.get(image=short).participant_count == 4 and not ClickMap.objects.get(image=short).is_ready
    first_counting = MapParameters(selection_recipe="first-counting")
    assert map_rounds(experiment_id=experiment.pk, image_id=short.pk, params=first_counting).count() == 5

    # Maps to 1e-6: unscaled (maps_raw.npz and maps_lab.h5 under the lab's key names) and min-max scaled (maps.npz).
    raw_npz = np.load(export_path(export, "maps_raw.npz"))
    scaled_npz = np.load(export_path(export, "maps.npz"))
    with h5py.File(export_path(export, "maps_lab.h5"), "r") as lab_file:
        assert set(lab_file["clickmaps"]) == {name.replace("/", "_") for name in trials}
        for image in images:
            expected = lab_map(trials[image.name])
            key, ours = image.name.replace("/", "_"), ClickMap.objects.get(image=image)
            stored = lab_file["clickmaps"][key]["clickmap"][()]
            assert stored.shape == (1, 256, 256) and lab_file["clickmaps"][key].attrs["original_path"] == image.name
            assert int(lab_file["click_counts"][key][()]) == len(trials[image.name]) == ours.participant_count
            npz_key = image.name.replace("%", "%25").replace("/", "%2F")
            for unscaled in (stored[0], raw_npz[npz_key]):
                assert np.abs(unscaled - expected).max() <= 1e-6 * expected.max()
            scaled = (expected - expected.min()) / (expected.max() - expected.min())
            assert np.abs(scaled_npz[npz_key] - scaled).max() <= 1e-6
        assert lab_file["metadata"].attrs["total_clickmaps"] == len(images)

    # Ceiling and floor (Spearman and IoU AUC) to 0.005, the floor against the same partner images.
    blurred = [np.stack([lab_blur(lab_trial_map(points)) for points in trials[image.name]]) for image in images]
    n = len(images)
    partners = (np.arange(n) + np.random.default_rng(SEED).integers(1, n, size=n)) % n  # ours: drawn first
    lab = lab_split_half(blurred, partners).mean(axis=0)
    ours = np.array([report.ceiling_spearman, report.floor_spearman, report.ceiling_auc, report.floor_auc])
    assert report.parameters["reliability"]["recipe"] == "lab" and report.image_count == n
    assert np.abs(ours - lab).max() < 0.005, (ours, lab)
    assert lab[2] < 0.9 and ours[0] > ours[1] + 0.1  # an AUC over [0.05, 0.95]; a real ceiling above its floor


def test_the_lab_click_csv_round_trips_through_the_lab_notation(played) -> None:
    experiment, images, short = played
    export = export_of(experiment, ["clicks_lab_csv"])
    text = export_path(export, "clicks_lab.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    stored = defaultdict(list)
    for round_id, x, y in Click.objects.order_by("round__submitted_at", "round_id", "seq").values_list(
        "round_id", "x", "y"
    ):
        stored[round_id].append((x, y))
    assert len(rows) == len(stored) and [list(row) for row in rows[:1]] == [["image_path", "clicks", "user_id"]]
    assert [parse_clicks(row["clicks"]) for row in rows] == list(stored.values())
    assert rows[0]["clicks"].startswith("[(") and "), (" in rows[0]["clicks"]
    # The lab's parser reads the same bubbles (it reads any one-bubble trial as empty, as it always has).
    for row, points in zip(rows, stored.values(), strict=True):
        pairs = re.sub(r'[{}"\[\]]', "", row["clicks"]).strip("()").split("), (")
        if len(points) > 1:
            assert [tuple(map(int, pair.split(","))) for pair in pairs] == points
    # Imported back into a twin experiment, the file gives the same maps.
    twin = ExperimentFactory(image_set=experiment.image_set)
    import_lab_csv(stream=io.StringIO(text), experiment=twin)
    for image in [*images, short]:
        ours, again = (
            ClickMap.objects.get(experiment=experiment, image=image),
            ClickMap.objects.get(experiment=twin, image=image),
        )
        assert (again.participant_count, again.rounds_digest != "") == (ours.participant_count, True)
        with ours.counts.open("rb") as a, again.counts.open("rb") as b:
            assert a.read() == b.read()


def test_the_manifest_says_why_a_map_is_missing_and_which_recipes_made_the_numbers(played) -> None:
    import json

    experiment, _, short = played
    compute_reliability(experiment_id=experiment.pk, iterations=2, seed=0)
    export = export_of(experiment, ["maps_npz", "maps_lab_hdf5"])
    manifest = json.loads(export_path(export, "manifest.json").read_text())
    assert manifest["maps"]["selection_recipe"] == "lab"
    assert manifest["maps"]["missing"] == [
        {"image": short.name, "participants": 4, "needed": 5,
         "reason": "4 of the 5 participants a map needs so far"},
    ]  # fmt: skip
    assert set(manifest["maps"]["files"]) == {"maps.npz", "maps_lab.h5"}
    reliability = manifest["reliability"]
    assert reliability["overlap_metric"] == "IoU AUC" and "trapezoid" in reliability["overlap_definition"]
    assert reliability["recipe"] == "lab" and isinstance(reliability["warnings"], list)
