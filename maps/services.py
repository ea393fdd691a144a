"""Building, storing and reading ClickMe maps, and measuring their reliability (docs/maps-and-reliability.md).

A map is always recomputed from the raw clicks of the rounds the selection recipe picks
(`map_rounds`), never patched, so building it again from the same data gives the same .npy
bytes. Files are named by a hash of their content: an unchanged rebuild rewrites nothing, and
files a build replaced are deleted by the next build of the same map.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from PIL import Image as PILImage
from tqdm import tqdm

from clickme_site.tasks_enqueue import enqueue, runs_in_process
from games.consensus import ConsensusMap
from games.imaging import png_bytes
from games.models import Click, Experiment, Image, Round
from maps import pending_builds
from maps.heatmap import SELECTIONS, MapParameters, click_maps, count_histograms, overlay, raw_maps
from maps.models import ClickMap, ReliabilityReport
from maps.reliability import (
    MIN_PARTICIPANTS,
    OVERLAP_LABELS,
    OVERLAPS,
    RELIABILITY_RECIPES,
    ReliabilityOptions,
    SplitHalf,
    plateau_gain,
    split_half,
)

logger = logging.getLogger(__name__)

SELECTION = SELECTIONS["lab"]  # the default recipe's rule, as recorded in a map's parameters["selection"]
BUILD_TASK = "maps.tasks.build_click_map_task"  # registered by MapsConfig.ready() importing maps.tasks
CHUNK = 64  # images per vectorised batch: 64 × 256 × 256 int64 histograms stay under 40 MB


def _selected(experiment_id: int, image_ids: Iterable[int] | None, params: MapParameters) -> QuerySet[Round]:
    """The selection recipe over several images (None: all): at most one round per (participant, image).

    "lab" takes each participant's earliest counting round of the image and then drops it if it
    is short; "first-counting" drops short rounds first (heatmap.SELECTIONS, docs/maps-and-reliability.md).
    """
    counting = Round.objects.counting().filter(experiment_id=experiment_id)
    if params.selection_recipe == "first-counting":
        counting = counting.filter(bubble_count__gte=params.min_clicks)
    earlier = counting.filter(participant_id=OuterRef("participant_id"), image_id=OuterRef("image_id")).filter(
        Q(submitted_at__lt=OuterRef("submitted_at")) | Q(submitted_at=OuterRef("submitted_at"), pk__lt=OuterRef("pk"))
    )
    chosen = counting if image_ids is None else counting.filter(image_id__in=list(image_ids))
    return chosen.exclude(Exists(earlier)).filter(bubble_count__gte=params.min_clicks)


def map_rounds(*, experiment_id: int, image_id: int, params: MapParameters | None = None) -> QuerySet[Round]:
    """The rounds that feed an image's map under the given (default: the experiment's) selection recipe."""
    return _selected(experiment_id, [image_id], params or experiment_parameters(experiment_id))


def npy_bytes(array: np.ndarray) -> bytes:
    """The array as a .npy file's bytes (no pickles: safe for anyone to numpy.load)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _store_npy(field: FieldFile, stem: str, array: np.ndarray | None) -> None:
    """Point the field at a content-named .npy of the array, written unless already there (or at nothing)."""
    if array is None:
        field.name = ""
        return
    data = npy_bytes(array)
    path = field.field.generate_filename(field.instance, f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}.npy")
    if path != field.name:
        field.name = path if field.storage.exists(path) else field.storage.save(path, ContentFile(data))


_MAP_FILE = re.compile(r"(counts|heatmap)-[0-9a-f]{16}\.npy")


def _collect_garbage(click_map: ClickMap) -> None:
    """Delete the map's files that its row no longer names: what earlier builds replaced.

    Runs under the row's lock, before this build writes: the row is then the committed truth
    and no other build of the map can be re-pointing at a file, so nothing in use is deleted
    (deleting after commit instead would race with the next build reusing the same content).
    """
    storage = click_map.counts.storage
    folder = posixpath.dirname(click_map.counts.field.generate_filename(click_map, "x"))
    try:
        _, names = storage.listdir(folder)
    except FileNotFoundError:
        return
    keep = {click_map.counts.name, click_map.heatmap.name}
    for name in names:
        if _MAP_FILE.fullmatch(name) and f"{folder}/{name}" not in keep:
            storage.delete(f"{folder}/{name}")


def _digest(round_ids: Iterable[int]) -> str:
    """SHA-256 of the included round ids in ascending order, joined by commas."""
    return hashlib.sha256(",".join(str(pk) for pk in sorted(round_ids)).encode()).hexdigest()


def _lock_maps(experiment_id: int, image_ids: list[int], params: MapParameters | None) -> dict[int, ClickMap]:
    """The maps of these images, created if missing and locked until the transaction ends.

    Locking before the rounds are read orders concurrent builds of one map: a build that
    started before a round was scored can never overwrite one that includes it.
    """
    defaults = (params or experiment_parameters(experiment_id)).as_dict()
    ClickMap.objects.bulk_create(
        [ClickMap(experiment_id=experiment_id, image_id=pk, parameters=defaults) for pk in image_ids],
        ignore_conflicts=True,
    )
    locked = ClickMap.objects.select_for_update().filter(experiment_id=experiment_id, image_id__in=image_ids)
    return {click_map.image_id: click_map for click_map in locked}


def _selected_clicks(
    experiment_id: int, image_ids: list[int], params: MapParameters
) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """The selected rounds as (round, image, participant) and their clicks as rows (round, x, y)."""
    selected = _selected(experiment_id, image_ids, params)
    rounds = sorted(selected.values_list("pk", "image_id", "participant_id"))
    clicks = np.array(
        Click.objects.filter(round__in=selected).values_list("round_id", "x", "y"), dtype=np.int64
    ).reshape(-1, 3)
    # Under READ COMMITTED a round scored between the two queries may bring clicks of its own: drop them.
    return rounds, clicks[np.isin(clicks[:, 0], [pk for pk, _, _ in rounds])]


def _build_chunk(experiment_id: int, image_ids: list[int], params: MapParameters, maps: dict[int, ClickMap]) -> None:
    """Recompute the maps of several images sharing parameters in one vectorised pass."""
    index = {pk: i for i, pk in enumerate(image_ids)}
    rounds, clicks = _selected_clicks(experiment_id, image_ids, params)
    round_ids = np.array([pk for pk, _, _ in rounds], dtype=np.int64)
    round_image = np.array([index[image_id] for _, image_id, _ in rounds], dtype=np.int64)
    owners = round_image[np.searchsorted(round_ids, clicks[:, 0])]
    sums = count_histograms(owners, clicks[:, 1], clicks[:, 2], len(image_ids), params.image_size)
    participants = np.bincount(round_image, minlength=len(image_ids))
    heatmaps = click_maps(sums, participants, params)
    clicks_per_image = np.bincount(owners, minlength=len(image_ids))
    rounds_per_image: dict[int, list[int]] = defaultdict(list)
    for pk, image_id, _ in rounds:
        rounds_per_image[image_id].append(pk)
    for image_id, i in index.items():
        click_map = maps[image_id]
        _collect_garbage(click_map)
        _store_npy(click_map.counts, "counts", sums[i].astype(np.int32))
        _store_npy(click_map.heatmap, "heatmap", heatmaps[i] if participants[i] >= params.min_participants else None)
        click_map.parameters = {**params.as_dict(), "selection": SELECTIONS[params.selection_recipe]}
        # One round per participant by the selection rule, so the two counts are equal.
        click_map.participant_count = click_map.round_count = int(participants[i])
        click_map.click_count = int(clicks_per_image[i])
        click_map.rounds_digest = _digest(rounds_per_image[image_id])
        click_map.save()


def build_click_map(*, experiment_id: int, image_id: int, params: MapParameters | None = None) -> ClickMap:
    """Recompute one image's map from raw clicks, with the given or else its recorded parameters."""
    with transaction.atomic():
        click_map = _lock_maps(experiment_id, [image_id], params)[image_id]
        params = params or MapParameters.from_dict(click_map.parameters)
        _build_chunk(experiment_id, [image_id], params, {image_id: click_map})
    return click_map


def _map_image_ids(experiment_id: int) -> list[int]:
    """Images with any round in the experiment, or with a map already (which may need emptying)."""
    played = Round.objects.filter(experiment_id=experiment_id).values_list("image_id", flat=True).distinct()
    mapped = ClickMap.objects.filter(experiment_id=experiment_id).values_list("image_id", flat=True)
    return sorted(set(played) | set(mapped))


def rebuild_maps(
    *,
    experiment_id: int | None = None,
    progress: bool = False,
    image_ids: Iterable[int] | None = None,
    params: MapParameters | None = None,
) -> int:
    """Rebuild every map of one experiment (or of all) from raw clicks, in vectorised chunks; returns the count.

    Maps keep the parameters they were recorded with, unless `params` is given: then every map
    rebuilt takes those (this is how an experiment's selection recipe or minimum changes).
    """
    experiments = (
        [experiment_id] if experiment_id is not None else list(Experiment.objects.values_list("pk", flat=True))
    )
    work = [(pk, sorted(image_ids) if image_ids is not None else _map_image_ids(pk)) for pk in experiments]
    built = 0
    with tqdm(total=sum(len(ids) for _, ids in work), unit="map", disable=not progress) as bar:
        for pk, ids in work:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                with transaction.atomic():
                    maps = _lock_maps(pk, chunk, params)
                    groups: dict[MapParameters, list[int]] = defaultdict(list)
                    for image_id in chunk:  # maps keep the parameters they were recorded with
                        groups[params or MapParameters.from_dict(maps[image_id].parameters)].append(image_id)
                    for recorded, group in groups.items():
                        _build_chunk(pk, group, recorded, maps)
                built += len(chunk)
                bar.update(len(chunk))
    return built


def enqueue_map_build(*, experiment_id: int, image_id: int, coalesce: bool = True) -> None:
    """Ask a worker to rebuild an image's map; never raises (clickme_site/tasks_enqueue.py).

    With `coalesce` (a counted round), the build starts MAP_BUILD_COALESCE_S later, and requests
    for the same map while it waits are that build (maps/pending_builds.py); a moderator's change
    and the sweep ask for a build at once. The map is derived data that `rebuild_maps` and the
    map sweep can always recreate, so a broker outage is only logged: it may not undo or fail the
    change that caused the rebuild.
    """
    wait_s = settings.MAP_BUILD_COALESCE_S if coalesce and not runs_in_process() else 0
    if wait_s and not pending_builds.claim(experiment_id, image_id, wait_s=wait_s):
        return  # a build already waits, and it reads this change

    def forget_claim(_: Exception) -> None:
        pending_builds.release(experiment_id, image_id)

    purpose = f"rebuild the map of image {image_id} in experiment {experiment_id}"
    enqueue(BUILD_TASK, experiment_id, image_id, purpose=purpose, log=logger, countdown=wait_s,
            on_broker_error=forget_claim if wait_s else None)  # fmt: skip


def build_requested_map(*, experiment_id: int, image_id: int) -> None:
    """A worker's rebuild of one map (`enqueue_map_build`): clear its waiting mark, rebuild, then check for a plateau.

    The mark goes first, before anything is read, so a round counted from here on asks for a build of its own.
    """
    pending_builds.release(experiment_id, image_id)
    build_click_map(experiment_id=experiment_id, image_id=image_id)
    retire_converged_images(experiment_id=experiment_id, image_ids=[image_id])


def _load_npy(field: FieldFile) -> np.ndarray:
    with field.open("rb") as handle:
        return np.load(io.BytesIO(handle.read()), allow_pickle=False)


def heatmap_array(click_map: ClickMap) -> np.ndarray:
    """The stored map, float32 (H, W) in [0, 1]; ValueError for a map without enough participants."""
    if not click_map.heatmap:
        raise ValueError(f"{click_map} has no heatmap yet: fewer than its minimum participants")
    return _load_npy(click_map.heatmap)


def consensus_map(experiment_id: int, image_id: int) -> ConsensusMap | None:
    """The image's published map and its participants, for games' quality rules (games.consensus); None until ready.

    MapsConfig.ready() registers this as games' consensus provider, so games never imports maps.
    """
    click_map = ClickMap.objects.filter(experiment_id=experiment_id, image_id=image_id).first()
    if click_map is None or not click_map.heatmap:
        return None
    return ConsensusMap(heatmap_array(click_map), click_map.participant_count)


def raw_map_array(click_map: ClickMap) -> np.ndarray:
    """The published map unscaled, float32 (H, W): the blurred mean of its participants' counts (as the lab saves).

    Recomputed from the stored counts with the map's parameters, so it is exactly the map before
    its min-max; ValueError for a map without enough participants.
    """
    if not click_map.heatmap:
        raise ValueError(f"{click_map} has no heatmap yet: fewer than its minimum participants")
    params = MapParameters.from_dict(click_map.parameters)
    counts = counts_array(click_map)[None]
    return raw_maps(counts, np.array([click_map.participant_count]), params)[0].astype(np.float32)


def counts_array(click_map: ClickMap) -> np.ndarray:
    """The stored summed bubble-centre counts, int32 (H, W)."""
    if not click_map.counts:
        raise ValueError(f"{click_map} has not been built")
    return _load_npy(click_map.counts)


def overlay_png(click_map: ClickMap, *, alpha: float = 0.5) -> bytes:
    """The image's crop with its map as a colour heat overlay, as PNG bytes.

    Each pixel is mixed with the colour of its heat in proportion alpha × heat, so cold
    regions show the image untouched; a map that is not ready yet gives the plain crop.
    """
    with click_map.image.crop.open("rb") as handle:
        crop = PILImage.open(io.BytesIO(handle.read())).convert("RGB")
    heat = heatmap_array(click_map) if click_map.heatmap else np.zeros((crop.height, crop.width), np.float32)
    if heat.shape != (crop.height, crop.width):
        crop = crop.resize((heat.shape[1], heat.shape[0]), PILImage.Resampling.BILINEAR)
    return png_bytes(PILImage.fromarray(overlay(np.asarray(crop), heat, alpha=alpha), "RGB"))


def experiment_parameters(experiment_id: int) -> MapParameters:
    """The experiment's map parameters and selection recipe: those its maps were recorded with (the first
    map's), or the defaults (the lab's recipe) for an experiment without maps. `rebuild_maps(params=...)`
    changes them for every map of the experiment."""
    recorded = ClickMap.objects.filter(experiment_id=experiment_id).order_by("pk").values_list("parameters", flat=True)
    first = recorded.first()
    return MapParameters.from_dict(first) if first else MapParameters()


# A ceiling this close to its floor (or below it) says the maps are no more alike within an image
# than across images: too few participants, or images whose maps all look alike (docs/maps-and-reliability.md).
CLEAR_MARGIN = 0.05


def reliability_warnings(report: ReliabilityReport) -> list[str]:
    """Plain-language warnings about a report: a ceiling not clearly above its floor, per metric."""
    overlap = OVERLAP_LABELS.get(report.parameters.get("reliability", {}).get("overlap", "mean-iou"), "overlap")
    warnings = []
    for label, ceiling, floor in (
        ("Spearman", report.ceiling_spearman, report.floor_spearman),
        (overlap, report.ceiling_auc, report.floor_auc),
    ):
        if ceiling is None or floor is None or np.isnan(ceiling) or np.isnan(floor):
            continue
        if ceiling <= floor:
            warnings.append(f"the split-half ceiling ({label} {ceiling:.3f}) is not above the floor ({floor:.3f})")
        elif ceiling - floor < CLEAR_MARGIN:
            warnings.append(
                f"the split-half ceiling ({label} {ceiling:.3f}) is within {CLEAR_MARGIN} of the floor ({floor:.3f})"
            )
    return warnings


def compute_reliability(
    *,
    experiment_id: int,
    iterations: int = 100,
    seed: int = 0,
    params: MapParameters | None = None,
    recipe: str = "lab",
    options: ReliabilityOptions | None = None,
) -> ReliabilityReport:
    """Split-half ceiling and different-image floor, per image and overall, seeded.

    `recipe` names the way halves, partner and overlap are made (reliability.RELIABILITY_RECIPES,
    default the lab's); `options` overrides it (e.g. the lab's recipe without the 224 crop). Images
    with fewer selected participants than the recipe needs are skipped. Per-image values go on
    ClickMap.split_half_*; the report keeps the overall means and, in parameters["per_image"], rows
    [image id, participants, ceiling ρ, floor ρ, ceiling overlap, floor overlap]; parameters also
    record the recipe, the selection recipe of the maps and the warnings. The lab's recipe draws
    each image's floor partner once among all scored images; clickme-v1 draws one per split among
    the same chunk of CHUNK images.
    """
    params = params or experiment_parameters(experiment_id)
    if options is None:
        if recipe not in RELIABILITY_RECIPES:
            raise ValueError(f"reliability recipe must be one of {tuple(RELIABILITY_RECIPES)}, not {recipe!r}")
        options = RELIABILITY_RECIPES[recipe]
    needed = options.needed(params)
    image_ids = sorted(
        _selected(experiment_id, None, params)
        .values("image_id").annotate(n=Count("pk")).filter(n__gte=needed).values_list("image_id", flat=True)
    )  # fmt: skip
    if len(image_ids) < 2:
        raise ValueError(f"need two or more images with at least {needed} participants each")
    rng = np.random.default_rng(seed)
    eligible = np.array(image_ids)
    # The lab draws each image's floor partner once among all images; drawn first, so the seed fixes them.
    partner_of = None
    if options.partner == "per-image":
        drawn = (np.arange(len(eligible)) + rng.integers(1, len(eligible), size=len(eligible))) % len(eligible)
        partner_of = dict(zip(eligible.tolist(), eligible[drawn].tolist(), strict=True))
    # A chunk's partners join it, so a chunk holds at most CHUNK images either way.
    size = CHUNK // 2 if partner_of else CHUNK
    rows: list[list[float]] = []
    for chunk in np.array_split(eligible, -(-len(eligible) // size)):
        scored_ids = [int(pk) for pk in chunk]
        members = sorted(set(scored_ids) | ({partner_of[pk] for pk in scored_ids} if partner_of else set()))
        index = {pk: i for i, pk in enumerate(members)}
        rounds, clicks = _selected_clicks(experiment_id, members, params)
        round_ids = np.array([pk for pk, _, _ in rounds], dtype=np.int64)
        owner_image = np.array([index[image_id] for _, image_id, _ in rounds], dtype=np.int64)
        scored = np.array([index[pk] for pk in scored_ids])
        partners = np.array([index[partner_of[pk]] for pk in scored_ids]) if partner_of else None
        result = split_half(
            owner_image, np.searchsorted(round_ids, clicks[:, 0]), clicks[:, 1], clicks[:, 2], params, iterations, rng,
            options, scored=scored, partners=partners,
        )  # fmt: skip
        counts = np.bincount(owner_image, minlength=len(index))
        rows += [
            [pk, int(counts[index[pk]]), *(float(getattr(result, name)[k]) for name in SplitHalf.__dataclass_fields__)]
            for k, pk in enumerate(scored_ids)
        ]
    table = np.array([row[2:] for row in rows], dtype=np.float64)
    # A flat half-map has no rank correlation (NaN): JSON and the database get null instead.
    rows = [[None if isinstance(value, float) and np.isnan(value) else value for value in row] for row in rows]
    recipe_name = next((name for name, known in RELIABILITY_RECIPES.items() if known == options), "custom")
    described = {"recipe": recipe_name, **options.as_dict(), "min_participants": needed,
                 "overlap_definition": OVERLAPS[options.overlap]}  # fmt: skip
    with transaction.atomic():
        for image_id, _, ceiling, _, auc, _ in rows:
            ClickMap.objects.filter(experiment_id=experiment_id, image_id=image_id).update(
                split_half_spearman=ceiling, split_half_auc=auc
            )
        report = ReliabilityReport(
            experiment_id=experiment_id,
            parameters={
                "iterations": iterations,
                "seed": seed,
                "map": params.as_dict(),
                "reliability": described,
                "selection_recipe": params.selection_recipe,
                "per_image": rows,
            },
            image_count=len(rows),
            ceiling_spearman=float(np.nanmean(table[:, 0])),
            floor_spearman=float(np.nanmean(table[:, 1])),
            ceiling_auc=float(np.nanmean(table[:, 2])),
            floor_auc=float(np.nanmean(table[:, 3])),
        )
        report.parameters["warnings"] = reliability_warnings(report)
        report.save()
        return report


def missing_maps(experiment_id: int, image_ids: Iterable[int] | None = None) -> list[dict]:
    """Why images have no published map yet: for each, the participants so far and the number needed.

    Covers the experiment's images that have a map row without a heatmap (built, too few
    participants) and, when `image_ids` is given, those of them never built at all.
    """
    params = experiment_parameters(experiment_id)
    maps = ClickMap.objects.filter(experiment_id=experiment_id, heatmap="")
    if image_ids is not None:
        image_ids = set(image_ids)
        maps = maps.filter(image_id__in=image_ids)
    rows = [
        {"image_id": image_id, "image": name, "participants": count,
         "needed": MapParameters.from_dict(parameters).min_participants}
        for image_id, name, count, parameters in maps.values_list(
            "image_id", "image__name", "participant_count", "parameters")
    ]  # fmt: skip
    if image_ids is not None:
        built = set(ClickMap.objects.filter(experiment_id=experiment_id).values_list("image_id", flat=True))
        rows += [
            {"image_id": pk, "image": name, "participants": 0, "needed": params.min_participants}
            for pk, name in Image.objects.filter(pk__in=image_ids - built).values_list("pk", "name")
        ]
    return sorted(rows, key=lambda row: row["image_id"])


PLATEAU_ITERATIONS = 20  # paired random splits per plateau check; a check runs after every scored round


def retire_converged_images(*, experiment_id: int, image_ids: Iterable[int] | None = None) -> int:
    """Retire active images whose maps have stopped improving, if the experiment asks for it.

    An image is checked once its map is ready and it has at least 2 × reliability.MIN_PARTICIPANTS
    participants; it retires when reliability.plateau_gain (the split-half Spearman gained from
    its last quarter of participants) is below the experiment's plateau_tolerance. Seeded by
    the image id, so the decision is reproducible. Returns how many images were retired.
    """
    experiment = Experiment.objects.get(pk=experiment_id)
    if not experiment.retire_on_plateau:
        return 0
    candidates = ClickMap.objects.filter(
        experiment_id=experiment_id,
        image__state=Image.State.ACTIVE,
        participant_count__gte=2 * MIN_PARTICIPANTS,
    ).exclude(heatmap="")
    if image_ids is not None:
        candidates = candidates.filter(image_id__in=list(image_ids))
    retired = 0
    for click_map in candidates:
        params = MapParameters.from_dict(click_map.parameters)
        if click_map.participant_count < params.min_participants:
            continue
        rounds, clicks = _selected_clicks(experiment_id, [click_map.image_id], params)
        owners = np.searchsorted(np.array([pk for pk, _, _ in rounds]), clicks[:, 0])
        histogram = count_histograms(owners, clicks[:, 1], clicks[:, 2], len(rounds), params.image_size)
        gain = plateau_gain(histogram, params, PLATEAU_ITERATIONS, np.random.default_rng(click_map.image_id))
        if gain < experiment.plateau_tolerance:
            retired += Image.objects.filter(pk=click_map.image_id, state=Image.State.ACTIVE).update(
                state=Image.State.RETIRED, state_changed_at=timezone.now()
            )
            logger.info("retired image %s: split-half gain %.4f below %s", click_map.image_id, gain,
                        experiment.plateau_tolerance)  # fmt: skip
    return retired


__all__ = [
    "SELECTION",
    "build_click_map",
    "build_requested_map",
    "compute_reliability",
    "consensus_map",
    "counts_array",
    "enqueue_map_build",
    "experiment_parameters",
    "heatmap_array",
    "map_rounds",
    "missing_maps",
    "overlay_png",
    "raw_map_array",
    "rebuild_maps",
    "reliability_warnings",
    "retire_converged_images",
]
