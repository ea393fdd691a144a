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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db.models import Count, Q, QuerySet

from games.models import IMAGE_SIZE, Category, Click, Image, Participant, Round
from maps.models import ClickMap, Export

ROUND_CHUNK = 1000  # rounds per page: ~50k bubbles at ~50 per round, one Parquet row group
MAP_CHUNK = 100  # click maps per page; each is read, written and dropped before the next
CLICK_FORMATS = {"clicks_csv", "clicks_parquet", "points_coco"}
MAP_FORMATS = {"maps_npz", "maps_hdf5", "overlays_png"}
FILE_NAMES = {
    "clicks_csv": "clicks.csv",
    "clicks_parquet": "clicks.parquet",
    "points_coco": "points_coco.json",
    "maps_npz": "maps.npz",
    "maps_hdf5": "maps.h5",
    "overlays_png": "overlays.zip",
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


def _write_maps(export: Export, rounds: QuerySet[Round], directory: Path, tick: Callable[..., None]) -> list[dict]:
    from maps import export_writers as writers
    from maps.services import heatmap_array, overlay_png

    formats, parameters = set(export.formats), {}
    with contextlib.ExitStack() as stack:
        index = stack.enter_context(contextlib.closing(writers.MapsIndexWriter(directory / MAPS_INDEX)))
        npz = hdf5 = overlays = None
        if "maps_npz" in formats:
            npz = stack.enter_context(contextlib.closing(writers.MapsNpzWriter(directory / FILE_NAMES["maps_npz"])))
        if "maps_hdf5" in formats:
            attrs = {"experiment": export.experiment.slug, "export": export.pk}
            hdf5 = writers.MapsHdf5Writer(directory / FILE_NAMES["maps_hdf5"], attrs=attrs)
            stack.enter_context(contextlib.closing(hdf5))
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
    wants_clicks, wants_maps = bool(formats & CLICK_FORMATS), bool(formats & MAP_FORMATS)
    total = (counts["rounds"] if wants_clicks else 0) + (map_queryset(export, rounds).count() if wants_maps else 0)
    done, written = 0, {"rounds": 0, "clicks": 0, "maps": 0}

    def tick(units: int, **kinds: int) -> None:
        nonlocal done
        done += units
        for kind, number in kinds.items():
            written[kind] += number
        if on_progress is not None:
            on_progress(done, total, written)

    parameters = []
    if wants_clicks:
        _write_clicks(export, rounds, directory, tick)
    if wants_maps:
        parameters = _write_maps(export, rounds, directory, tick)
    counts.update(clicks=written["clicks"], maps=written["maps"])
    names = [FILE_NAMES[name] for name in FILE_NAMES if name in formats] + ([MAPS_INDEX] if wants_maps else [])
    return [writers.file_digest(directory / name) for name in names], counts, parameters


def dataset_version(export: Export, files: list[dict]) -> str:
    """`<experiment>-<export id>-<digest>`: the digest covers every data file, so equal data gives equal digests."""
    digest = hashlib.sha256("".join(f"{entry['name']}:{entry['sha256']}\n" for entry in files).encode())
    return f"{export.experiment.slug}-{export.pk}-{digest.hexdigest()[:12]}"
