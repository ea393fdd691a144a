"""File writers of a dataset export, one per format, each fed item by item so memory stays flat.

Every writer keeps one protocol: `Writer(path, context)` opens its file (`context` is
maps.exports.WriteContext: the export and its rounds), `write(item)` appends one item of the pass
that feeds it (maps.exports.EXPORT_FORMATS says which: a RoundsPage, a LabRoundsPage or a
MapItem), and `close()` finishes the file. A new format is a class here and a row in
EXPORT_FORMATS (docs/architecture.md, "Which file to change for").
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

if TYPE_CHECKING:  # the rows an export reads (maps.exports); this module itself needs no Django
    from maps.exports import LabRoundsPage, RoundsPage

# One row per bubble (docs/running-a-study.md, "7. Export").
# `participant` is the pseudonymous username, never a panel id.
CLICK_SCHEMA = pa.schema(
    [
        ("round", pa.int64()),
        ("participant", pa.string()),
        ("image", pa.string()),
        ("class", pa.string()),
        ("seq", pa.int32()),
        ("x", pa.int16()),
        ("y", pa.int16()),
        ("t_ms", pa.int64()),
        ("outcome", pa.string()),
        ("points", pa.int32()),
        ("partner_version", pa.string()),
        ("valid", pa.bool_()),
        ("submitted_at", pa.timestamp("us", tz="UTC")),
    ]
)
COLUMN_DOCS = {
    "round": "round id (stable across exports)",
    "participant": "pseudonymous participant name (no panel id, no address)",
    "image": "image name, unique within the image set",
    "class": "the image's category",
    "seq": "bubble order within the round, from 0",
    "x": "bubble centre, image pixels (0..255) from the left of the 256x256 crop",
    "y": "bubble centre, image pixels (0..255) from the top",
    "t_ms": "milliseconds since the pointer first went down",
    "outcome": "correct, wrong or skipped ('' while unscored)",
    "points": "points awarded (empty while unscored)",
    "partner_version": "partner@version that scored the round",
    "valid": "whether the round counts: scored, not skipped, not invalidated, participant not shadow-banned",
    "submitted_at": "when the round was submitted (UTC, ISO 8601)",
}
HDF5_ATTRS = ["class", "participants", "rounds", "clicks", "split_half_spearman"]  # plus "name", the image's
MAP_INDEX_COLUMNS = ["key", "image", "class", "participants", "rounds", "clicks", "split_half_spearman"]
BLOCK = 1 << 20  # bytes per read when checksumming


@dataclass(frozen=True)
class WriteContext:
    """What a writer may need besides its items: the export's HDF5 attributes, and COCO's header."""

    attrs: dict[str, Any] = field(default_factory=dict)
    coco_info: dict[str, Any] = field(default_factory=dict)
    coco_header: Callable[[], tuple[Iterable[dict], Iterable[dict]]] = lambda: ((), ())  # (categories, images)


class MapItem:
    """What the "maps" writers get: one map's facts (MAP_INDEX_COLUMNS), its arrays and overlay loaded on first use."""

    def __init__(
        self, facts: dict[str, Any], *, heatmap: Callable[[], np.ndarray], raw: Callable[[], np.ndarray] | None = None,
        overlay: Callable[[], bytes] | None = None, crop: Callable[[], np.ndarray] | None = None,
    ) -> None:  # fmt: skip
        self.facts = facts
        self._load = {"heatmap": heatmap, "raw": raw, "overlay": overlay, "crop": crop}

    @functools.cached_property
    def heatmap(self) -> np.ndarray:
        """The map min-max scaled to [0, 1]."""
        return self._load["heatmap"]()

    @functools.cached_property
    def raw(self) -> np.ndarray:
        """The map unscaled: the blurred mean of its participants' bubble counts."""
        return self._load["raw"]()

    @functools.cached_property
    def overlay(self) -> bytes:
        """A PNG of the map over its image."""
        return self._load["overlay"]()

    @functools.cached_property
    def crop(self) -> np.ndarray:
        """The image's 256x256 crop as players saw it, uint8 (256, 256, 3)."""
        return self._load["crop"]()


def click_batch(page: RoundsPage) -> pa.RecordBatch:
    """One page of bubbles, with their rounds' columns repeated, as CLICK_SCHEMA rows (made once per page)."""
    if page.batch is not None:
        return page.batch
    rounds = page.rounds
    round_columns = {
        "participant": [row.participant for row in rounds],
        "image": [row.image for row in rounds],
        "class": [row.category for row in rounds],
        "outcome": [row.outcome for row in rounds],
        "points": [row.points for row in rounds],
        "partner_version": [f"{row.partner}@{row.partner_version}" if row.partner_version is not None else None
                            for row in rounds],
        "valid": [row.valid for row in rounds],
        "submitted_at": [row.submitted_at for row in rounds],
    }  # fmt: skip
    clicks = page.clicks
    # Bubbles come ordered by round and rounds by id: each bubble's round is found by binary search,
    # and the round-level columns are gathered by Arrow rather than built row by row in Python.
    round_ids = np.asarray([row.pk for row in rounds], dtype=np.int64)
    owner = pa.array(np.searchsorted(round_ids, np.asarray(clicks.round_id, dtype=np.int64)))
    bubble = {"round": clicks.round_id, "seq": clicks.seq, "x": clicks.x, "y": clicks.y, "t_ms": clicks.t_ms}
    arrays = [
        pa.array(bubble[field.name], field.type) if field.name in bubble
        else pa.array(round_columns[field.name], field.type).take(owner)
        for field in CLICK_SCHEMA
    ]  # fmt: skip
    page.batch = pa.RecordBatch.from_arrays(arrays, schema=CLICK_SCHEMA)
    return page.batch


def coco_annotations(page: RoundsPage) -> Iterator[dict]:
    """One COCO annotation per round: its participant's bubbles as keypoint triplets, in order."""
    clicks, start = page.clicks, 0
    for row in page.rounds:
        end = start
        while end < len(clicks) and clicks.round_id[end] == row.pk:
            end += 1
        points = zip(clicks.x[start:end], clicks.y[start:end], strict=True)
        yield {
            "id": row.pk, "image_id": row.image_id, "category_id": row.category_id, "round": row.pk,
            "participant": row.participant, "keypoints": [value for x, y in points for value in (x, y, 2)],
            "num_keypoints": end - start, "t_ms": list(clicks.t_ms[start:end]), "outcome": row.outcome,
            "points": row.points, "valid": row.valid,
        }  # fmt: skip
        start = end


def map_key(image_name: str) -> str:
    """The member or group name of an image's map: its name, with '/' escaped (HDF5 would nest it)."""
    return image_name.replace("%", "%25").replace("/", "%2F") or "%00"


def file_digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of one written file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


class ClicksCsvWriter:
    """clicks.csv: Arrow's CSV writer (RFC 4180 quoting), one record batch at a time."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        index = CLICK_SCHEMA.get_field_index("submitted_at")
        schema = CLICK_SCHEMA.set(index, pa.field("submitted_at", pa.string()))
        self._writer = pa_csv.CSVWriter(str(path), schema, write_options=pa_csv.WriteOptions(quoting_style="needed"))

    def write(self, page: RoundsPage) -> None:
        """Append one page of bubbles."""
        batch = click_batch(page)
        index = batch.schema.get_field_index("submitted_at")
        # ISO 8601 with a 'T' and 'Z' (Arrow's default text has a space). A page has one time per
        # round, so format the distinct values only: formatting every bubble's copy is 10x slower.
        encoded = pc.dictionary_encode(batch.column(index))
        stamps = pc.strftime(encoded.dictionary, format="%Y-%m-%dT%H:%M:%SZ").take(encoded.indices)
        self._writer.write_batch(batch.set_column(index, "submitted_at", stamps))

    def close(self) -> None:
        self._writer.close()


class ClicksParquetWriter:
    """clicks.parquet: one row group per chunk, zstd-compressed, dictionary-encoded strings."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._writer = pq.ParquetWriter(str(path), CLICK_SCHEMA, compression="zstd")

    def write(self, page: RoundsPage) -> None:
        """Append one page of bubbles as its own row group."""
        self._writer.write_batch(click_batch(page))

    def close(self) -> None:
        self._writer.close()


class CocoPointsWriter:
    """points_coco.json: COCO-style images and categories, then one annotation per round, written as they come.

    Each annotation is one participant's point list on one image, keypoint-style
    ([x, y, 2] triplets; 2 = visible), with the bubble times alongside.
    """

    def __init__(self, path: Path, context: WriteContext) -> None:
        info, (categories, images) = context.coco_info, context.coco_header()
        self._handle = path.open("w", encoding="utf-8")
        self._handle.write('{"info": ' + json.dumps(info) + ', "licenses": [], "categories": [')
        self._write_list(categories)
        self._handle.write('], "images": [')
        self._write_list(images)
        self._handle.write('], "annotations": [')
        self._first = True

    def _write_list(self, items: Iterable[dict]) -> None:
        for number, item in enumerate(items):
            self._handle.write(("," if number else "") + "\n" + json.dumps(item))

    def write(self, page: RoundsPage) -> None:
        """Append one annotation per round of the page."""
        for annotation in coco_annotations(page):
            self._handle.write(("\n" if self._first else ",\n") + json.dumps(annotation, separators=(",", ":")))
            self._first = False

    def close(self) -> None:
        self._handle.write("]}\n")
        self._handle.close()


class MapsNpzWriter:
    """maps.npz: one float32 256x256 array per image, keyed by `map_key`, added to the zip one at a time.

    `np.load` reads it like any `np.savez_compressed` file, lazily, member by member.
    """

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)

    def array(self, item: MapItem) -> np.ndarray:
        return item.heatmap

    def write(self, item: MapItem) -> None:
        """Append one image's map."""
        with self._zip.open(f"{item.facts['key']}.npy", "w", force_zip64=True) as member:
            array = np.ascontiguousarray(self.array(item), dtype=np.float32)
            np.lib.format.write_array(member, array, allow_pickle=False)

    def close(self) -> None:
        self._zip.close()


class RawMapsNpzWriter(MapsNpzWriter):
    """maps_raw.npz: the same keys as maps.npz, each map unscaled (the blurred mean of bubble counts)."""

    def array(self, item: MapItem) -> np.ndarray:
        return item.raw


class MapsHdf5Writer:
    """maps.h5 in the lab layout: dataset `clickmaps/<image name>/clickmap` with the map's facts as attributes."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._file = h5py.File(path, "w", track_order=True)
        for name, value in context.attrs.items():
            self._file.attrs[name] = value
        self._group = self._file.create_group("clickmaps", track_order=True)

    def write(self, item: MapItem) -> None:
        """Write one image's map; h5py flushes it to the file, so nothing accumulates."""
        facts = item.facts
        attrs = {"name": facts["image"]} | {name: facts[name] for name in HDF5_ATTRS}
        group = self._group.create_group(facts["key"])
        data = np.asarray(item.heatmap, dtype=np.float32)
        group.create_dataset("clickmap", data=data, compression="gzip", shuffle=True)
        for name, value in attrs.items():
            if value is not None:  # HDF5 attributes have no null
                group.attrs[name] = value

    def close(self) -> None:
        self._file.close()


class CropsHdf5Writer:
    """crops.h5: `images/<key>`, the uint8 (256, 256, 3) crop of each mapped image, keyed as maps.h5 is."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._file = h5py.File(path, "w", track_order=True)
        self._group = self._file.create_group("images", track_order=True)

    def write(self, item: MapItem) -> None:
        facts = item.facts
        dataset = self._group.create_dataset(facts["key"], data=item.crop, compression="gzip", shuffle=True)
        dataset.attrs["name"], dataset.attrs["class"] = facts["image"], facts["class"]

    def close(self) -> None:
        self._file.close()


def lab_clicks_text(points: Iterable[tuple[int, int]]) -> str:
    """Bubbles as `[(x, y), (x, y)]`, the notation serre-lab's current parser splits on "), (".

    (Its parser reads our older `{(x,y),(x,y)}` as a single pair and drops the trial as empty.)
    """
    return "[" + ", ".join(f"({x}, {y})" for x, y in points) + "]"


class LabClicksCsvWriter:
    """clicks_lab.csv: image_path, clicks, user_id, one row per round, as serre-lab's CSV input has them."""

    COLUMNS = ("image_path", "clicks", "user_id")

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(self.COLUMNS)

    def write(self, page: LabRoundsPage) -> None:
        """Append one row per round of the page."""
        for row in page.rounds:
            self._writer.writerow([row.image, lab_clicks_text(row.points), row.participant])

    def close(self) -> None:
        self._handle.close()


def lab_key(image_name: str) -> str:
    """The lab's HDF5 name of an image's map: its name with '/' written as '_' (prepare_clickmaps.py)."""
    return image_name.replace("/", "_")


class LabMapsHdf5Writer:
    """maps_lab.h5 as serre-lab's prepare_clickmaps writes its .h5, so their readers take it unchanged.

    `clickmaps/<lab key>/clickmap`: the unscaled blurred mean, float32 (1, 256, 256) (one level,
    as the lab's file has without click-count bins), with `bin_clickmaps` 1 and the attributes
    `shape` and `original_path` (the image name) the lab writes, plus our `name`, `class`,
    `participants`, `rounds`, `clicks`. `click_counts/<lab key>`: the number of trials in the map.
    `metadata`: the lab's attributes (total_unique_images, total_maps, total_clickmaps,
    filter_duplicates, creation_date, completed, compression) and the export's.
    """

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._file = h5py.File(path, "w", track_order=True)
        self._maps = self._file.create_group("clickmaps", track_order=True)
        self._counts = self._file.create_group("click_counts", track_order=True)
        self._metadata = self._file.create_group("metadata")
        for name, value in context.attrs.items():
            self._metadata.attrs[name] = value
        self._total = self._trials = 0

    def write(self, item: MapItem) -> None:
        """Write one image's unscaled map and its trial count."""
        facts = item.facts
        image = facts["image"]
        key = lab_key(image)
        group = self._maps.create_group(key)
        array = np.asarray(item.raw, dtype=np.float32)[None]
        group.create_dataset("clickmap", data=array)
        group.create_dataset("bin_clickmaps", data=np.asarray(1))
        group.attrs["shape"] = array.shape
        group.attrs["original_path"] = image
        group.attrs["name"] = image
        for name in ("class", "participants", "rounds", "clicks"):
            group.attrs[name] = facts[name]
        self._counts.create_dataset(key, data=np.asarray(facts["participants"]))
        self._total += 1
        self._trials += int(facts["participants"])

    def close(self) -> None:
        attrs = self._metadata.attrs
        attrs["total_unique_images"] = attrs["total_clickmaps"] = self._total
        attrs["total_maps"] = self._trials
        attrs["filter_duplicates"] = np.bytes_("True")  # one submission per participant and image
        attrs["creation_date"] = np.bytes_(datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"))
        attrs["completed"] = True
        attrs["compression"] = np.bytes_("none")
        self._file.close()


class OverlaysZipWriter:
    """overlays.zip: one PNG of the map over its image per image, stored (PNGs are compressed already)."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)

    def write(self, item: MapItem) -> None:
        """Append one overlay."""
        self._zip.writestr(f"{item.facts['key']}.png", item.overlay)

    def close(self) -> None:
        self._zip.close()


class MapsIndexWriter:
    """maps_index.csv: which image each map key is, with its class and how much data made it."""

    def __init__(self, path: Path, context: WriteContext) -> None:
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(MAP_INDEX_COLUMNS)

    def write(self, item: MapItem) -> None:
        """Append one map's row."""
        row = item.facts
        self._writer.writerow(["" if row[column] is None else row[column] for column in MAP_INDEX_COLUMNS])

    def close(self) -> None:
        self._handle.close()


def write_json(path: Path, document: dict) -> None:
    """Write a small JSON document (the manifest) readably."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
