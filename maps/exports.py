"""Writing one export's files: which rounds it selects, streamed chunk by chunk through the format writers.

Memory stays flat whatever the dataset size: rounds are read by keyset pagination on their id
(one page of `ROUND_CHUNK` rounds, then their bubbles ordered by (round, seq) through Click's
primary key), each page becomes one Arrow record batch that the CSV and Parquet writers append
and the COCO writer turns into annotations, and maps are read, written and dropped one image at
a time. Nothing is collected across pages except counters; the distinct counts come from SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Count, Q, QuerySet

from games.models import IMAGE_SIZE, Category, Click, Image, Participant, Round
from maps.heatmap import SELECTIONS
from maps.models import ClickMap, Export
from maps.reliability import OVERLAP_LABELS, OVERLAPS
from maps.services import experiment_parameters, heatmap_array, missing_maps, overlay_png, raw_map_array

ROUND_CHUNK = 1000  # rounds per page: ~50k bubbles at ~50 per round, one Parquet row group
MAP_CHUNK = 100  # click maps per page; each is read, written and dropped before the next
CLICK_FORMATS = {"clicks_csv", "clicks_parquet", "points_coco", "clicks_lab_csv"}
MAP_FORMATS = {"maps_npz", "maps_hdf5", "overlays_png", "maps_raw_npz", "maps_lab_hdf5"}
FILE_NAMES = {
    "clicks_csv": "clicks.csv",
    "clicks_parquet": "clicks.parquet",
    "points_coco": "points_coco.json",
    "maps_npz": "maps.npz",
    "maps_hdf5": "maps.h5",
    "overlays_png": "overlays.zip",
    # For serre-lab's scripts as they are (docs/maps-and-reliability.md): unscaled maps, their HDF5
    # layout and key naming, and one row per trial in the click notation their current parser reads.
    "maps_raw_npz": "maps_raw.npz",
    "maps_lab_hdf5": "maps_lab.h5",
    "clicks_lab_csv": "clicks_lab.csv",
}
MAPS_INDEX = "maps_index.csv"
MANIFEST = "manifest.json"

ProgressCallback = Callable[[int, int, dict[str, int]], None]  # (units done, units, written); a unit: a round or map

# Moderators' exclusions; a session's invalidation covers its rounds even if they were not marked one by one.
MODERATED = (
    Q(invalidated_at__isnull=False)
    | Q(session__invalidated_at__isnull=False)
    | Q(participant__ban_state=Participant.BanState.SHADOW)
)
# The rounds that count (games.models.play.RoundQuerySet.counting): no moderator excluded them and
# they were not played from a pilot (preview) link.
VALID = Q(status=Round.Status.SCORED) & ~Q(outcome=Round.Outcome.SKIPPED) & ~MODERATED & Q(session__is_pilot=False)
QUALITY = {"valid": VALID, "all": Q(), "invalidated": MODERATED}
ROUND_FIELDS = (
    "pk", "participant__username", "image_id", "image__name", "image__category_id", "image__category__name",
    "outcome", "points", "partner_version__partner__name", "partner_version__version", "submitted_at", "status",
    "invalidated_at", "session__invalidated_at", "participant__ban_state", "session__is_pilot",
)  # fmt: skip


@dataclass(frozen=True)
class Window:
    """Which rounds an export covers.

    `start` and `end` bound the submission time ([start, end), from the filters). `cutoff` is the
    export's own start and `after` the start of the export it follows (since-last): together they
    tile time by the moment a round became final, so successive increments neither repeat nor
    miss a round. For valid rounds that moment is their scoring, not their submission: a round
    submitted just before an export but scored after it belongs to the next increment.
    """

    start: datetime | None
    end: datetime | None
    cutoff: datetime
    after: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        return {key: value.isoformat() if value else None for key, value in vars(self).items()}


def select_rounds(*, export: Export, window: Window) -> QuerySet[Round]:
    """The export's rounds: its experiment, in its quality state, inside the window."""
    quality = export.filters.get("quality", "valid")
    rounds = Round.objects.filter(QUALITY[quality], experiment_id=export.experiment_id, submitted_at__isnull=False)
    if window.start is not None:
        rounds = rounds.filter(submitted_at__gte=window.start)
    if window.end is not None:
        rounds = rounds.filter(submitted_at__lt=window.end)
    final = "scored_at" if quality == "valid" else "submitted_at"  # valid rounds are all scored
    rounds = rounds.filter(**{f"{final}__lt": window.cutoff})
    if window.after is not None:
        rounds = rounds.filter(**{f"{final}__gte": window.after})
    return rounds


def _pages(queryset: QuerySet, size: int, *fields: str) -> Iterator[list]:
    # Keyset pagination, not OFFSET or a server-side cursor: each page is one short indexed query,
    # so no cursor stays open while progress is written (SQLite) and page cost does not grow.
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        rows = list(page.order_by("pk").values_list(*fields)[:size]) if fields else list(page.order_by("pk")[:size])
        if not rows:
            return
        last = rows[-1][0] if fields else rows[-1].pk
        yield rows


def _is_valid(row: tuple) -> bool:
    outcome, status, invalidated, session_invalidated, ban, pilot = row[6], row[11], row[12], row[13], row[14], row[15]
    return (
        not pilot
        and status == Round.Status.SCORED
        and outcome != Round.Outcome.SKIPPED
        and invalidated is None
        and session_invalidated is None
        and ban == Participant.BanState.NONE
    )


def round_columns(rounds: list[tuple]) -> dict[str, list]:
    """The per-round columns of CLICK_SCHEMA for one page of rounds (ROUND_FIELDS rows)."""
    return {
        "participant": [row[1] for row in rounds],
        "image": [row[3] for row in rounds],
        "class": [row[5] for row in rounds],
        "outcome": [row[6] for row in rounds],
        "points": [row[7] for row in rounds],
        "partner_version": [f"{row[8]}@{row[9]}" if row[9] is not None else None for row in rounds],
        "valid": [_is_valid(row) for row in rounds],
        "submitted_at": [row[10] for row in rounds],
    }


def coco_annotations(rounds: list[tuple], clicks: list[tuple]) -> Iterator[dict]:
    """One COCO annotation per round: its participant's bubbles as keypoint triplets, in order."""
    start = 0
    for row in rounds:
        end = start
        while end < len(clicks) and clicks[end][0] == row[0]:
            end += 1
        points = clicks[start:end]
        yield {
            "id": row[0], "image_id": row[2], "category_id": row[4], "round": row[0], "participant": row[1],
            "keypoints": [value for _, _, x, y, _ in points for value in (x, y, 2)], "num_keypoints": len(points),
            "t_ms": [t for *_, t in points], "outcome": row[6], "points": row[7], "valid": _is_valid(row),
        }  # fmt: skip
        start = end


def selection_counts(rounds: QuerySet[Round]) -> dict[str, int]:
    """Rounds, distinct participants and images of the selection, counted by the database."""
    return rounds.aggregate(
        rounds=Count("pk"), participants=Count("participant_id", distinct=True), images=Count("image_id", distinct=True)
    )


def _coco_header(rounds: QuerySet[Round]) -> tuple[Iterator[dict], Iterator[dict]]:
    image_ids = rounds.values("image_id")
    categories = Category.objects.filter(images__in=image_ids).distinct()
    images = Image.objects.filter(pk__in=image_ids)
    return (
        ({"id": pk, "name": name, "supercategory": ""} for page in _pages(categories, 1000, "pk", "name")
         for pk, name in page),
        ({"id": pk, "file_name": name, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "category_id": category}
         for page in _pages(images, 1000, "pk", "name", "category_id") for pk, name, category in page),
    )  # fmt: skip


def _write_clicks(export: Export, rounds: QuerySet[Round], directory: Path, tick: Callable[..., None]) -> None:
    from maps import export_writers as writers  # pyarrow and h5py load only where exports are written

    formats = set(export.formats)
    with contextlib.ExitStack() as stack:
        tables = [
            stack.enter_context(contextlib.closing(cls(directory / FILE_NAMES[name])))
            for name, cls in (("clicks_csv", writers.ClicksCsvWriter), ("clicks_parquet", writers.ClicksParquetWriter))
            if name in formats
        ]
        coco = None
        if "points_coco" in formats:
            info = {"description": f"ClickMe points of {export.experiment.slug}", "export": export.pk}
            categories, images = _coco_header(rounds)
            coco = writers.CocoPointsWriter(
                directory / FILE_NAMES["points_coco"], info=info, categories=categories, images=images
            )
            stack.enter_context(contextlib.closing(coco))
        for page in _pages(rounds, ROUND_CHUNK, *ROUND_FIELDS):
            clicks = list(
                Click.objects.filter(round_id__in=[row[0] for row in page])
                .order_by("round_id", "seq")
                .values_list("round_id", "seq", "x", "y", "t_ms")
            )
            if tables:
                batch = writers.click_batch([row[0] for row in page], round_columns(page), clicks)
                for table in tables:
                    table.write(batch)
            if coco is not None:
                for annotation in coco_annotations(page, clicks):
                    coco.add(annotation)
            tick(len(page), rounds=len(page), clicks=len(clicks))


def _submission_pages(rounds: QuerySet[Round], size: int, *fields: str) -> Iterator[list]:
    """Pages of rounds in submission order, by keyset pagination on (submitted_at, pk)."""
    last = None
    ordered = rounds.order_by("submitted_at", "pk")
    while True:
        page = ordered
        if last is not None:
            page = ordered.filter(Q(submitted_at__gt=last[0]) | Q(submitted_at=last[0], pk__gt=last[1]))
        rows = list(page.values_list("submitted_at", "pk", *fields)[:size])
        if not rows:
            return
        last = rows[-1][:2]
        yield rows


def _write_lab_clicks(export: Export, rounds: QuerySet[Round], directory: Path, tick: Callable[..., None]) -> None:
    """clicks_lab.csv: one row per round in submission order, so the lab's keep-first de-duplication keeps
    each participant's first submission of an image, as the "lab" selection recipe does."""
    from maps import export_writers as writers

    with contextlib.closing(writers.LabClicksCsvWriter(directory / FILE_NAMES["clicks_lab_csv"])) as writer:
        for page in _submission_pages(rounds, ROUND_CHUNK, "image__name", "participant__username"):
            points: dict[int, list[tuple[int, int]]] = {row[1]: [] for row in page}
            clicks = Click.objects.filter(round_id__in=list(points)).order_by("round_id", "seq")
            for round_id, x, y in clicks.values_list("round_id", "x", "y"):
                points[round_id].append((x, y))
            for _, pk, image, participant in page:
                writer.add(image, points[pk], participant)
            tick(len(page))


def lab_key_collisions(names: Iterable[str]) -> dict[str, list[str]]:
    """Image names that the lab's key naming ('/' written as '_') would give the same key."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_key[name.replace("/", "_")].append(name)
    return {key: sorted(found) for key, found in by_key.items() if len(found) > 1}


def _write_maps(export: Export, rounds: QuerySet[Round], directory: Path, tick: Callable[..., None]) -> list[dict]:
    from maps import export_writers as writers

    formats, parameters = set(export.formats), {}
    if "maps_lab_hdf5" in formats:
        collisions = lab_key_collisions(map_queryset(export, rounds).values_list("image__name", flat=True))
        if collisions:
            clash = "; ".join(" and ".join(repr(name) for name in names) for names in collisions.values())
            raise ValueError(
                f"maps_lab.h5 names maps with '/' written as '_', so these images would share a key: {clash}"
            )
    with contextlib.ExitStack() as stack:
        index = stack.enter_context(contextlib.closing(writers.MapsIndexWriter(directory / MAPS_INDEX)))
        npz = hdf5 = overlays = raw_npz = lab = None
        if "maps_npz" in formats:
            npz = stack.enter_context(contextlib.closing(writers.MapsNpzWriter(directory / FILE_NAMES["maps_npz"])))
        if "maps_raw_npz" in formats:
            raw_npz = writers.MapsNpzWriter(directory / FILE_NAMES["maps_raw_npz"])
            stack.enter_context(contextlib.closing(raw_npz))
        if "maps_hdf5" in formats:
            attrs = {"experiment": export.experiment.slug, "export": export.pk}
            hdf5 = writers.MapsHdf5Writer(directory / FILE_NAMES["maps_hdf5"], attrs=attrs)
            stack.enter_context(contextlib.closing(hdf5))
        if "maps_lab_hdf5" in formats:
            attrs = {"experiment": export.experiment.slug, "export": export.pk}
            lab = writers.LabMapsHdf5Writer(directory / FILE_NAMES["maps_lab_hdf5"], attrs=attrs)
            stack.enter_context(contextlib.closing(lab))
        if "overlays_png" in formats:
            overlays = writers.OverlaysZipWriter(directory / FILE_NAMES["overlays_png"])
            stack.enter_context(contextlib.closing(overlays))
        for page in _pages(map_queryset(export, rounds).select_related("image__category"), MAP_CHUNK):
            for click_map in page:
                facts = {
                    "key": writers.map_key(click_map.image.name), "image": click_map.image.name,
                    "class": click_map.image.category.name, "participants": click_map.participant_count,
                    "rounds": click_map.round_count, "clicks": click_map.click_count,
                    "split_half_spearman": click_map.split_half_spearman,
                }  # fmt: skip
                index.add(facts)
                if npz is not None or hdf5 is not None:
                    array = heatmap_array(click_map)
                    if npz is not None:
                        npz.add(facts["key"], array)
                    if hdf5 is not None:
                        attrs = {"name": facts["image"]} | {name: facts[name] for name in writers.HDF5_ATTRS}
                        hdf5.add(facts["key"], array, attrs=attrs)
                if raw_npz is not None or lab is not None:
                    raw = raw_map_array(click_map)
                    if raw_npz is not None:
                        raw_npz.add(facts["key"], raw)
                    if lab is not None:
                        lab.add(facts["image"], raw, facts)
                if overlays is not None:
                    overlays.add(facts["key"], overlay_png(click_map))
                parameters.setdefault(json.dumps(click_map.parameters, sort_keys=True), click_map.parameters)
            tick(len(page), maps=len(page))
    return list(parameters.values())


def map_queryset(export: Export, rounds: QuerySet[Round]) -> QuerySet[ClickMap]:
    """The stored, published maps of the images the selection touches (built from valid rounds only).

    A map with fewer participants than its minimum has no heatmap file and is left out.
    """
    maps = ClickMap.objects.filter(experiment_id=export.experiment_id, image_id__in=rounds.values("image_id"))
    return maps.exclude(heatmap="")


def write_dataset(
    *, export: Export, directory: Path, window: Window, on_progress: ProgressCallback | None = None
) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Write the export's data files into `directory`; return their digests, the counts and the map parameters."""
    from maps import export_writers as writers

    rounds = select_rounds(export=export, window=window)
    counts = selection_counts(rounds)
    formats = set(export.formats)
    wants_maps = bool(formats & MAP_FORMATS)
    table_formats = formats & (CLICK_FORMATS - {"clicks_lab_csv"})  # written together in one pass over rounds
    click_passes = int(bool(table_formats)) + int("clicks_lab_csv" in formats)
    total = counts["rounds"] * click_passes + (map_queryset(export, rounds).count() if wants_maps else 0)
    done, written = 0, {"rounds": 0, "clicks": 0, "maps": 0}

    def tick(units: int, **kinds: int) -> None:
        nonlocal done
        done += units
        for kind, number in kinds.items():
            written[kind] += number
        if on_progress is not None:
            on_progress(done, total, written)

    parameters = []
    if table_formats:
        _write_clicks(export, rounds, directory, tick)
    if "clicks_lab_csv" in formats:
        _write_lab_clicks(export, rounds, directory, tick)
    if wants_maps:
        parameters = _write_maps(export, rounds, directory, tick)
    counts.update(clicks=written["clicks"], maps=written["maps"])
    names = [FILE_NAMES[name] for name in FILE_NAMES if name in formats] + ([MAPS_INDEX] if wants_maps else [])
    return [writers.file_digest(directory / name) for name in names], counts, parameters


def dataset_version(export: Export, files: list[dict]) -> str:
    """`<experiment>-<export id>-<digest>`: the digest covers every data file, so equal data gives equal digests."""
    digest = hashlib.sha256("".join(f"{entry['name']}:{entry['sha256']}\n" for entry in files).encode())
    return f"{export.experiment.slug}-{export.pk}-{digest.hexdigest()[:12]}"


FORMAT_DOCS = {
    "maps_hdf5": "clickmaps/<key>/clickmap, float32 256x256 min-max scaled to [0, 1], attributes class, participants, "
    "name; keys escape '/' as %2F (maps_index.csv says which image each key is)",
    "maps_npz": "one float32 256x256 array per key, min-max scaled to [0, 1]; maps_index.csv says which image each "
    "key is",
    "maps_raw_npz": "the same keys as maps.npz, each map unscaled: the blurred mean of its participants' bubble counts "
    "(what serre-lab's scripts save and threshold)",
    "maps_lab_hdf5": "serre-lab's prepare_clickmaps layout: clickmaps/<image name with '/' as '_'>/clickmap, the "
    "unscaled map as float32 (1, 256, 256), with attributes original_path, shape, name, class; click_counts/<key> "
    "the trials in each map; metadata attributes as the lab writes them",
    "clicks_lab_csv": "image_path, clicks, user_id: one row per round in submission order, clicks written "
    "[(x, y), (x, y)] as serre-lab's current parser reads them; their duplicate filter (keep the first) then "
    "their short-trial filter give the rounds of the 'lab' selection recipe",
}


def _selection_image_ids(export: Export) -> QuerySet:
    window = export.parameters.get("window") or {}
    parse = {key: datetime.fromisoformat(value) if value else None for key, value in window.items()}
    rounds = select_rounds(export=export, window=Window(**parse)) if parse else Round.objects.none()
    return rounds.values_list("image_id", flat=True).distinct()


def manifest_maps(export: Export) -> dict[str, Any]:
    """The manifest's "reliability" and "maps" entries: how the maps were selected and scored, what each map
    file holds, and, for every image of the selection without a map, its participants so far and needed."""

    report = export.experiment.reliability_reports.first()
    reliability = None
    if report is not None:
        recipe = report.parameters.get("reliability", {})
        overlap = recipe.get("overlap", "mean-iou")  # reports from before issue 15 scored the mean IoU
        reliability = {
            "computed_at": report.computed_at.isoformat(), "image_count": report.image_count,
            "ceiling_spearman": report.ceiling_spearman, "floor_spearman": report.floor_spearman,
            "ceiling_auc": report.ceiling_auc, "floor_auc": report.floor_auc,
            "overlap_metric": OVERLAP_LABELS[overlap], "overlap_definition": OVERLAPS[overlap],
            "recipe": recipe.get("recipe", "clickme-v1"), "warnings": report.parameters.get("warnings", []),
            "parameters": report.parameters,
        }  # fmt: skip
    params = experiment_parameters(export.experiment_id)
    missing = missing_maps(export.experiment_id, _selection_image_ids(export))
    formats = set(export.formats)
    maps = {
        "source": "the stored map of each image that has rounds in this selection, built from valid rounds only",
        "selection_recipe": params.selection_recipe,
        "selection": SELECTIONS[params.selection_recipe],
        "hdf5": FORMAT_DOCS["maps_hdf5"],
        "npz": FORMAT_DOCS["maps_npz"],
        "files": {FILE_NAMES[name]: FORMAT_DOCS[name] for name in FORMAT_DOCS if name in formats},
        "missing": [
            {
                "image": row["image"],
                "participants": row["participants"],
                "needed": row["needed"],
                "reason": f"{row['participants']} of the {row['needed']} participants a map needs so far",
            }
            for row in missing
        ],
    }
    return {"reliability": reliability, "maps": maps}
