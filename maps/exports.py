"""Writing one export's files: which rounds it selects, streamed chunk by chunk through the format writers.

Memory stays flat whatever the dataset size: rounds are read by keyset pagination on their id
(one page of `ROUND_CHUNK` rounds, then their bubbles ordered by (round, seq) through Click's
primary key), each page becomes one Arrow record batch that the CSV and Parquet writers append
and the COCO writer turns into annotations, and maps are read, written and dropped one image at
a time. Nothing is collected across pages except counters; the distinct counts come from SQL.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from django.db.models import Count, Q, QuerySet
from PIL import Image as PILImage

from games.models import IMAGE_SIZE, Category, Click, Image, Round
from maps.heatmap import SELECTIONS
from maps.models import ClickMap, Export
from maps.reliability import OVERLAP_LABELS, OVERLAPS
from maps.services import experiment_parameters, heatmap_array, missing_maps, overlay_png, raw_map_array

ROUND_CHUNK = 1000  # rounds per page: ~50k bubbles at ~50 per round, one Parquet row group
MAP_CHUNK = 100  # click maps per page; each is read, written and dropped before the next


@dataclass(frozen=True)
class ExportFormat:
    """One format an export can write: its file, the pass that feeds it, its writer, and what it holds.

    `source` is the pass over the data that feeds the writer: "rounds" (rounds by id with their
    bubbles, a RoundsPage at a time), "lab_rounds" (rounds in submission order, a LabRoundsPage at
    a time) or "maps" (a MapItem per published map). `writer` names its class in
    maps/export_writers.py, loaded only where exports are written (pyarrow and h5py stay out of
    web processes); every writer is opened with (path, context), fed `write(item)`, then closed.
    """

    name: str
    file: str
    label: str  # as the dashboard offers it
    source: str
    writer: str
    doc: str | None = None  # what the manifest says the file holds, beyond its columns
    lab: bool = False  # made for serre-lab's scripts as they are (docs/maps-and-reliability.md)
    ticked: bool | None = None  # ticked on the dashboard's export form; by default, every format but the lab's

    def __post_init__(self) -> None:
        if self.ticked is None:
            object.__setattr__(self, "ticked", not self.lab)


# The formats, in the order their files are listed and digested (docs/running-a-study.md, "7. Export").
EXPORT_FORMATS = (
    ExportFormat("clicks_csv", "clicks.csv", "Clicks (CSV)", "rounds", "ClicksCsvWriter"),
    ExportFormat("clicks_parquet", "clicks.parquet", "Clicks (Parquet)", "rounds", "ClicksParquetWriter"),
    ExportFormat("points_coco", "points_coco.json", "Points (COCO JSON)", "rounds", "CocoPointsWriter"),
    ExportFormat(
        "maps_npz", "maps.npz", "Maps (NumPy .npz)", "maps", "MapsNpzWriter",
        doc="one float32 256x256 array per key, min-max scaled to [0, 1]; maps_index.csv says which image each "
        "key is",
    ),
    ExportFormat(
        "maps_hdf5", "maps.h5", "Maps (HDF5, scaled to [0, 1])", "maps", "MapsHdf5Writer",
        doc="clickmaps/<key>/clickmap, float32 256x256 min-max scaled to [0, 1], attributes class, participants, "
        "name; keys escape '/' as %2F (maps_index.csv says which image each key is)",
    ),
    ExportFormat("overlays_png", "overlays.zip", "Overlays (PNG zip)", "maps", "OverlaysZipWriter"),
    # What training needs beside the maps, so `model_server.train --maps EXPORT_DIR` runs on the
    # export alone (docs/training.md, "Data").
    ExportFormat(
        "crops_hdf5", "crops.h5", "Image crops for training (HDF5)", "maps", "CropsHdf5Writer", ticked=False,
        doc="images/<key>: the 256x256 RGB crop players saw (uint8, height x width x 3) of every image with a "
        "map, under the same keys as maps.h5, with attributes name and class",
    ),
    # For serre-lab's scripts as they are (docs/maps-and-reliability.md): unscaled maps, their HDF5
    # layout and key naming, and one row per trial in the click notation their current parser reads.
    ExportFormat(
        "maps_raw_npz", "maps_raw.npz", "Unscaled maps (NumPy .npz)", "maps", "RawMapsNpzWriter", lab=True,
        doc="the same keys as maps.npz, each map unscaled: the blurred mean of its participants' bubble counts "
        "(what serre-lab's scripts save and threshold)",
    ),
    ExportFormat(
        "maps_lab_hdf5", "maps_lab.h5", "Maps for serre-lab's scripts (HDF5, unscaled)", "maps", "LabMapsHdf5Writer",
        lab=True,
        doc="serre-lab's prepare_clickmaps layout: clickmaps/<image name with '/' as '_'>/clickmap, the "
        "unscaled map as float32 (1, 256, 256), with attributes original_path, shape, name, class; click_counts/<key> "
        "the trials in each map; metadata attributes as the lab writes them",
    ),
    ExportFormat(
        "clicks_lab_csv", "clicks_lab.csv", "Clicks for serre-lab's scripts (CSV)", "lab_rounds", "LabClicksCsvWriter",
        lab=True,
        doc="image_path, clicks, user_id: one row per round in submission order, clicks written "
        "[(x, y), (x, y)] as serre-lab's current parser reads them; their duplicate filter (keep the first) then "
        "their short-trial filter give the rounds of the 'lab' selection recipe",
    ),
)  # fmt: skip
FORMATS_BY_NAME = {fmt.name: fmt for fmt in EXPORT_FORMATS}
FILE_NAMES = {fmt.name: fmt.file for fmt in EXPORT_FORMATS}
MAPS_INDEX = "maps_index.csv"  # written with every export that has a map format (MapsIndexWriter)
MANIFEST = "manifest.json"

ProgressCallback = Callable[[int, int, dict[str, int]], None]  # (units done, units, written); a unit: a round or map

# The quality states an export selects, each by the rule's one home (games.models.play.RoundQuerySet):
# the rounds that count, every round, or those a moderator excluded.
QUALITY: dict[str, Callable[[QuerySet[Round]], QuerySet[Round]]] = {
    "valid": lambda rounds: rounds.counting(),
    "all": lambda rounds: rounds,
    "invalidated": lambda rounds: rounds.moderated(),
}
ROUND_FIELDS = (
    "pk", "participant__username", "image_id", "image__name", "image__category_id", "image__category__name",
    "outcome", "points", "partner_version__partner__name", "partner_version__version", "submitted_at",
)  # fmt: skip


class RoundRow(NamedTuple):
    """One exported round: ROUND_FIELDS, then `valid`, whether it counts (Round.objects.counting)."""

    pk: int
    participant: str
    image_id: int
    image: str
    category_id: int
    category: str
    outcome: str
    points: int | None
    partner: str | None
    partner_version: str | None
    submitted_at: datetime
    valid: bool


@dataclass(frozen=True)
class Clicks:
    """A page's bubbles as named columns, ordered by (round_id, seq): columns, because a page has
    ~50k of them and both the Arrow batch and the COCO keypoints read them column by column."""

    round_id: Sequence[int] = ()
    seq: Sequence[int] = ()
    x: Sequence[int] = ()
    y: Sequence[int] = ()
    t_ms: Sequence[int] = ()

    def __len__(self) -> int:
        return len(self.round_id)


@dataclass
class RoundsPage:
    """What the "rounds" writers get: one page of rounds (by id) and their bubbles, in order.

    `batch` is the page as one Arrow record batch, made once by the first writer that needs it.
    """

    rounds: list[RoundRow]
    clicks: Clicks
    batch: Any = None


class LabRound(NamedTuple):
    """One round as serre-lab's CSV has it."""

    image: str
    points: list[tuple[int, int]]
    participant: str


@dataclass
class LabRoundsPage:
    """What the "lab_rounds" writers get: one page of rounds in submission order."""

    rounds: list[LabRound]


def _coco_header(rounds: QuerySet[Round]) -> tuple[Iterator[dict], Iterator[dict]]:
    """The COCO categories and images of the rounds' images, read page by page."""
    image_ids = rounds.values("image_id")
    categories = Category.objects.filter(images__in=image_ids).distinct()
    images = Image.objects.filter(pk__in=image_ids)
    return (
        ({"id": pk, "name": name, "supercategory": ""} for page in _pages(categories, 1000, "pk", "name")
         for pk, name in page),
        ({"id": pk, "file_name": name, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "category_id": category}
         for page in _pages(images, 1000, "pk", "name", "category_id") for pk, name, category in page),
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
    rounds = QUALITY[quality](Round.objects.filter(experiment_id=export.experiment_id, submitted_at__isnull=False))
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


def selection_counts(rounds: QuerySet[Round]) -> dict[str, int]:
    """Rounds, distinct participants and images of the selection, counted by the database."""
    return rounds.aggregate(
        rounds=Count("pk"), participants=Count("participant_id", distinct=True), images=Count("image_id", distinct=True)
    )


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


def lab_key_collisions(names: Iterable[str]) -> dict[str, list[str]]:
    """Image names that the lab's key naming ('/' written as '_') would give the same key."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_key[name.replace("/", "_")].append(name)
    return {key: sorted(found) for key, found in by_key.items() if len(found) > 1}


def map_queryset(export: Export, rounds: QuerySet[Round]) -> QuerySet[ClickMap]:
    """The stored, published maps of the images the selection touches (built from valid rounds only).

    A map with fewer participants than its minimum has no heatmap file and is left out.
    """
    maps = ClickMap.objects.filter(experiment_id=export.experiment_id, image_id__in=rounds.values("image_id"))
    return maps.exclude(heatmap="")


def _round_pages(rounds: QuerySet[Round]) -> Iterator[RoundsPage]:
    """The "rounds" pass: pages of rounds by id, each with its bubbles ordered by (round, seq).

    Whether a round counts is asked of Round.objects.counting() once per page (one indexed query
    for a thousand ids), not re-derived here from the round's fields.
    """
    for page in _pages(rounds, ROUND_CHUNK, *ROUND_FIELDS):
        ids = [row[0] for row in page]
        valid = set(Round.objects.counting().filter(pk__in=ids).values_list("pk", flat=True))
        clicks = Click.objects.filter(round_id__in=ids).order_by("round_id", "seq")
        columns = list(zip(*clicks.values_list("round_id", "seq", "x", "y", "t_ms"), strict=True))
        yield RoundsPage([RoundRow(*row, valid=row[0] in valid) for row in page], Clicks(*columns))


def _lab_round_pages(rounds: QuerySet[Round]) -> Iterator[LabRoundsPage]:
    """The "lab_rounds" pass: rounds in submission order, so the lab's keep-first de-duplication keeps each
    participant's first submission of an image, as the "lab" selection recipe does."""
    for page in _submission_pages(rounds, ROUND_CHUNK, "image__name", "participant__username"):
        points: dict[int, list[tuple[int, int]]] = {row[1]: [] for row in page}
        clicks = Click.objects.filter(round_id__in=list(points)).order_by("round_id", "seq")
        for round_id, x, y in clicks.values_list("round_id", "x", "y"):
            points[round_id].append((x, y))
        yield LabRoundsPage([LabRound(image, points[pk], participant) for _, pk, image, participant in page])


def _map_item(writers: ModuleType, click_map: ClickMap) -> Any:
    """One published map for the "maps" writers: its facts, and its arrays and overlay read on first use."""
    facts = {
        "key": writers.map_key(click_map.image.name), "image": click_map.image.name,
        "class": click_map.image.category.name, "participants": click_map.participant_count,
        "rounds": click_map.round_count, "clicks": click_map.click_count,
        "split_half_spearman": click_map.split_half_spearman,
    }  # fmt: skip
    return writers.MapItem(
        facts,
        heatmap=functools.partial(heatmap_array, click_map),
        raw=functools.partial(raw_map_array, click_map),
        overlay=functools.partial(overlay_png, click_map),
        crop=functools.partial(crop_array, click_map.image),
    )


def crop_array(image: Image) -> np.ndarray:
    """The 256x256 RGB crop players saw, as uint8 (256, 256, 3)."""
    with image.crop.open("rb") as handle, PILImage.open(handle) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.uint8)


def _check_lab_keys(export: Export, rounds: QuerySet[Round]) -> None:
    collisions = lab_key_collisions(map_queryset(export, rounds).values_list("image__name", flat=True))
    if collisions:
        clash = "; ".join(" and ".join(repr(name) for name in names) for names in collisions.values())
        raise ValueError(f"maps_lab.h5 names maps with '/' written as '_', so these images would share a key: {clash}")


def write_dataset(
    *, export: Export, directory: Path, window: Window, on_progress: ProgressCallback | None = None
) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Write the export's data files into `directory`; return their digests, the counts and the map parameters.

    One pass over the data per source its formats need (rounds by id, rounds in submission order,
    maps), each feeding every writer of that source item by item.
    """
    from maps import export_writers as writers  # pyarrow and h5py load only where exports are written

    rounds = select_rounds(export=export, window=window)
    counts = selection_counts(rounds)
    chosen = [fmt for fmt in EXPORT_FORMATS if fmt.name in set(export.formats)]
    sources = {fmt.source for fmt in chosen}
    maps = map_queryset(export, rounds)
    total = counts["rounds"] * len(sources - {"maps"}) + (maps.count() if "maps" in sources else 0)
    done, written, parameters = 0, {"rounds": 0, "clicks": 0, "maps": 0}, {}

    def tick(units: int, **kinds: int) -> None:
        nonlocal done
        done += units
        for kind, number in kinds.items():
            written[kind] += number
        if on_progress is not None:
            on_progress(done, total, written)

    if "maps_lab_hdf5" in export.formats:
        _check_lab_keys(export, rounds)
    context = writers.WriteContext(
        attrs={"experiment": export.experiment.slug, "export": export.pk},
        coco_info={"description": f"ClickMe points of {export.experiment.slug}", "export": export.pk},
        coco_header=functools.partial(_coco_header, rounds),
    )
    for source in ("rounds", "lab_rounds", "maps"):
        if source not in sources:
            continue
        with contextlib.ExitStack() as stack:
            opened = [(MAPS_INDEX, "MapsIndexWriter")] if source == "maps" else []
            opened += [(fmt.file, fmt.writer) for fmt in chosen if fmt.source == source]
            outputs = [
                stack.enter_context(contextlib.closing(getattr(writers, cls)(directory / name, context)))
                for name, cls in opened
            ]
            if source == "rounds":
                for page in _round_pages(rounds):
                    for output in outputs:
                        output.write(page)
                    tick(len(page.rounds), rounds=len(page.rounds), clicks=len(page.clicks))
            elif source == "lab_rounds":
                for page in _lab_round_pages(rounds):
                    for output in outputs:
                        output.write(page)
                    tick(len(page.rounds))
            else:
                for page in _pages(maps.select_related("image__category"), MAP_CHUNK):
                    for click_map in page:
                        item = _map_item(writers, click_map)
                        for output in outputs:
                            output.write(item)
                        parameters.setdefault(json.dumps(click_map.parameters, sort_keys=True), click_map.parameters)
                    tick(len(page), maps=len(page))
    counts.update(clicks=written["clicks"], maps=written["maps"])
    names = [fmt.file for fmt in chosen] + ([MAPS_INDEX] if "maps" in sources else [])
    return [writers.file_digest(directory / name) for name in names], counts, list(parameters.values())


def dataset_version(export: Export, files: list[dict]) -> str:
    """`<experiment>-<export id>-<digest>`: the digest covers every data file, so equal data gives equal digests."""
    digest = hashlib.sha256("".join(f"{entry['name']}:{entry['sha256']}\n" for entry in files).encode())
    return f"{export.experiment.slug}-{export.pk}-{digest.hexdigest()[:12]}"


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
        "hdf5": FORMATS_BY_NAME["maps_hdf5"].doc,
        "npz": FORMATS_BY_NAME["maps_npz"].doc,
        "files": {fmt.file: fmt.doc for fmt in EXPORT_FORMATS if fmt.doc and fmt.name in formats},
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
