"""Dataset exports: every format reads back and matches its manifest; filters, increments, failures, no PII."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.utils import timezone
from PIL import Image

from games.models import Round
from games.tests.factories import ExperimentFactory, UserFactory
from maps.export_jobs import ExportRequestInvalid, create_export, export_path, last_successful_export, run_export
from maps.export_tasks import export_dataset_task
from maps.models import ClickMap, Export
from maps.services import heatmap_array
from maps.tests.export_data import ADDRESS_HASH, PANEL_ID, USER_AGENT, Played, add_round, play_experiment
from model_server import train
from model_server.export_data import ExportDataset

pytestmark = pytest.mark.django_db
EVERY_FORMAT = ["clicks_csv", "clicks_parquet", "points_coco", "maps_npz", "maps_hdf5", "overlays_png"]


@pytest.fixture
def played() -> Played:
    return play_experiment()


def export_of(
    played: Played, formats: list[str] | None = None, *, since: Export | None = None, **filters: str
) -> Export:
    """Create and run an export synchronously, as a worker would."""
    export = create_export(experiment=played.experiment, user=UserFactory(), formats=formats or ["clicks_csv"],
                           filters=filters, since=since, enqueue=False)  # fmt: skip
    return run_export(export_id=export.pk)


def read(export: Export, name: str) -> bytes:
    return export_path(export, name).read_bytes()


def csv_rows(export: Export) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read(export, "clicks.csv").decode())))


def test_it_writes_every_format_matching_its_manifest(played: Played) -> None:
    export = export_of(played, EVERY_FORMAT)
    assert export.status == Export.Status.SUCCEEDED and export.progress == 1.0 and export.dataset_version
    manifest = json.loads(read(export, "manifest.json"))
    assert {entry["name"] for entry in manifest["files"]} == {
        "clicks.csv", "clicks.parquet", "points_coco.json", "maps.npz", "maps.h5", "maps_index.csv", "overlays.zip",
    }  # fmt: skip
    for entry in manifest["files"]:
        data = read(export, entry["name"])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
    assert export.files[:-1] == manifest["files"] and export.files[-1]["name"] == "manifest.json"
    clicks = sum(3 + n for n in range(5)) + 5 * 4
    assert manifest["counts"] == {"rounds": 10, "participants": 5, "images": 2, "clicks": clicks, "maps": 2}
    assert export.counts == manifest["counts"] and manifest["dataset_version"] == export.dataset_version
    assert manifest["filters"] == {"quality": "valid"} and manifest["parameters"]["maps"][0]["diameter"] == 21


def test_clicks_read_back_the_same_from_csv_and_parquet(played: Played) -> None:
    export = export_of(played, ["clicks_csv", "clicks_parquet"])
    rows = csv_rows(export)
    table = pq.read_table(export_path(export, "clicks.parquet")).to_pylist()
    assert len(rows) == len(table) == export.counts["clicks"]
    first, stored = rows[0], table[0]
    assert list(first) == ["round", "participant", "image", "class", "seq", "x", "y", "t_ms", "outcome", "points",
                           "partner_version", "valid", "submitted_at"]  # fmt: skip
    assert first["image"] == stored["image"] == "tabby_cat_01.JPEG" and first["class"] == "tabby_cat"
    assert int(first["x"]) == stored["x"] and first["participant"] == played.sessions[0].participant.username
    assert first["partner_version"] == str(played.version) and first["submitted_at"] == "2024-03-01T10:00:00.000000Z"
    assert [(r["round"], r["seq"]) for r in table] == sorted((r["round"], r["seq"]) for r in table)


def test_maps_read_back_in_the_lab_layout_and_as_numpy(played: Played) -> None:
    export = export_of(played, ["maps_npz", "maps_hdf5", "overlays_png"])
    with h5py.File(export_path(export, "maps.h5"), "r") as lab, np.load(export_path(export, "maps.npz")) as npz:
        assert sorted(lab["clickmaps"]) == sorted(npz.files) == ["beagle_01.JPEG", "tabby_cat_01.JPEG"]
        for click_map in ClickMap.objects.filter(experiment=played.experiment).select_related("image__category"):
            group = lab[f"clickmaps/{click_map.image.name}"]
            assert group["clickmap"].dtype == np.float32 and group["clickmap"].shape == (256, 256)
            np.testing.assert_array_equal(group["clickmap"][()], heatmap_array(click_map))
            np.testing.assert_array_equal(npz[click_map.image.name], heatmap_array(click_map))
            assert group.attrs["class"] == click_map.image.category.name and group.attrs["participants"] == 5
    with zipfile.ZipFile(export_path(export, "overlays.zip")) as overlays:
        assert sorted(overlays.namelist()) == ["beagle_01.JPEG.png", "tabby_cat_01.JPEG.png"]
        assert overlays.read("beagle_01.JPEG.png").startswith(b"\x89PNG")


def test_pages_of_rounds_stream_the_same_rows_and_report_progress(played: Played) -> None:
    whole = export_of(played, ["clicks_csv", "points_coco"], quality="all")
    paged = create_export(experiment=played.experiment, user=UserFactory(), formats=["clicks_csv", "points_coco"],
                          filters={"quality": "all"}, enqueue=False)  # fmt: skip
    seen: list[tuple[int, int, int]] = []
    with mock.patch("maps.exports.ROUND_CHUNK", 3), mock.patch("maps.export_jobs.PROGRESS_EVERY_S", 0):
        paged = run_export(
            export_id=paged.pk, on_progress=lambda done, total, n: seen.append((done, total, n["clicks"]))
        )
    assert [done for done, _, _ in seen] == [3, 6, 9, 12, 14] and {total for _, total, _ in seen} == {14}
    assert seen[-1][2] == paged.counts["clicks"] and csv_rows(paged) == csv_rows(whole)
    assert read(paged, "points_coco.json") == read(whole, "points_coco.json").replace(
        f'"export": {whole.pk}'.encode(), f'"export": {paged.pk}'.encode()
    )


def test_coco_points_list_each_participants_bubbles(played: Played) -> None:
    export = export_of(played, ["points_coco"])
    coco = json.loads(read(export, "points_coco.json"))
    assert {c["name"] for c in coco["categories"]} == {"tabby_cat", "beagle"}
    assert {i["file_name"] for i in coco["images"]} == {"tabby_cat_01.JPEG", "beagle_01.JPEG"}
    assert len(coco["annotations"]) == 10
    first = coco["annotations"][0]
    assert first["num_keypoints"] == 3 and len(first["keypoints"]) == 9 and first["keypoints"][2::3] == [2, 2, 2]
    assert first["participant"] == played.sessions[0].participant.username and first["t_ms"] == [0, 50, 100]


def test_no_panel_id_or_address_leaves(played: Played) -> None:
    export = export_of(played, EVERY_FORMAT, quality="all")
    blobs = [read(export, entry["name"]) for entry in export.files]
    for name in ("maps.npz", "overlays.zip"):
        with zipfile.ZipFile(export_path(export, name)) as archive:
            blobs += [archive.read(member) for member in archive.namelist()]
    blobs.append(repr(pq.read_table(export_path(export, "clicks.parquet")).to_pylist()).encode())
    for secret in (PANEL_ID, ADDRESS_HASH, USER_AGENT):
        assert not any(secret.encode() in blob for blob in blobs), secret


@pytest.mark.parametrize(("quality", "rounds"), [("valid", 10), ("all", 14), ("invalidated", 2)])
def test_it_filters_by_quality(played: Played, quality: str, rounds: int) -> None:
    export = export_of(played, quality=quality)
    rows = csv_rows(export)
    assert export.counts["rounds"] == rounds == len({row["round"] for row in rows})
    assert {row["valid"] for row in rows} == {"valid": {"true"}, "all": {"true", "false"}, "invalidated": {"false"}}[
        quality
    ]


def test_it_filters_by_date(played: Played) -> None:
    assert export_of(played, **{"from": "2024-03-01", "to": "2024-03-01"}).counts["rounds"] == 5
    assert export_of(played, **{"from": "2024-03-02"}).counts["rounds"] == 5
    assert export_of(played, to="2024-03-01T10:02:00Z").counts["rounds"] == 3


def test_since_last_export_counts_only_new_rounds(played: Played) -> None:
    first = export_of(played)
    assert last_successful_export(experiment=played.experiment) == first
    new = add_round(played.sessions[0], played.images[1], timezone.now(), version=played.version)
    second = export_of(played, ["clicks_csv", "maps_hdf5"], since=first)
    assert second.counts["rounds"] == 1 and {row["round"] for row in csv_rows(second)} == {str(new.pk)}
    manifest = json.loads(read(second, "manifest.json"))
    assert manifest["since"] == {"export_id": first.pk, "dataset_version": first.dataset_version}
    assert second.since == first and second.counts["maps"] == 1  # only the image the new round touched
    assert export_of(played, since=second).counts["rounds"] == 0


def test_a_round_submitted_before_an_export_but_scored_after_it_is_in_the_next_increment(played: Played) -> None:
    waiting = add_round(played.sessions[1], played.images[0], timezone.now(), version=None)  # submitted, not scored
    first = export_of(played)
    assert str(waiting.pk) not in {row["round"] for row in csv_rows(first)}
    Round.objects.filter(pk=waiting.pk).update(
        status=Round.Status.SCORED, outcome=Round.Outcome.CORRECT, points=44, partner_version=played.version,
        scored_at=timezone.now(),
    )  # fmt: skip
    second = export_of(played, since=first)
    assert {row["round"] for row in csv_rows(second)} == {str(waiting.pk)}
    assert export_of(played, since=second).counts["rounds"] == 0


def test_rounds_finalised_in_the_settle_time_before_an_export_go_to_the_next_increment(
    played: Played, settings
) -> None:
    settings.EXPORT_SETTLE_SECONDS = 30
    Round.objects.filter(scored_at__isnull=False).update(scored_at=timezone.now() - timedelta(hours=1))
    recent = add_round(played.sessions[2], played.images[1], timezone.now(), version=played.version)
    first = export_of(played)  # the round was scored a moment ago: perhaps not yet committed everywhere
    assert first.counts["rounds"] > 0 and str(recent.pk) not in {row["round"] for row in csv_rows(first)}
    assert first.parameters["window"]["cutoff"] == (first.started_at - timedelta(seconds=30)).isoformat()
    later = timezone.now() + timedelta(minutes=1)
    with mock.patch("maps.export_jobs.timezone.now", return_value=later):
        second = export_of(played, since=first)
    assert {row["round"] for row in csv_rows(second)} == {str(recent.pk)}


def test_a_failing_export_records_why_and_leaves_no_directory(played: Played) -> None:
    export = create_export(experiment=played.experiment, user=UserFactory(), formats=EVERY_FORMAT, filters={},
                           enqueue=False)  # fmt: skip
    failing = mock.patch("maps.export_writers.MapsHdf5Writer.write", side_effect=OSError("disk full"))
    with failing, pytest.raises(OSError, match="disk full"):
        run_export(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED and export.error == "OSError: disk full" and not export.files
    assert not [path for path in Path(settings.EXPORT_ROOT).rglob("*") if path.is_file()]
    assert run_export(export_id=export.pk).status == Export.Status.SUCCEEDED  # a failed export can be run again


def test_running_a_finished_export_again_changes_nothing(played: Played) -> None:
    export = export_of(played, ["clicks_parquet"])
    stamp = export_path(export, "clicks.parquet").stat().st_mtime_ns
    again = run_export(export_id=export.pk)
    assert (again.finished_at, again.directory, again.files) == (export.finished_at, export.directory, export.files)
    assert export_path(export, "clicks.parquet").stat().st_mtime_ns == stamp
    assert len(list((Path(settings.EXPORT_ROOT) / played.experiment.slug).iterdir())) == 1


@pytest.mark.parametrize(
    ("formats", "filters", "message"),
    [
        (["clicks_xlsx"], {}, "unknown export format"),
        (["manifest"], {}, "at least one data format"),
        (["clicks_csv"], {"quality": "good"}, "quality must be one of"),
        (["clicks_csv"], {"quality": ["valid"]}, "quality must be one of"),
        (["clicks_csv"], {"colour": "red"}, "unknown filter"),
        (["clicks_csv"], {"from": "last tuesday"}, "must be a date"),
        (["clicks_csv"], {"from": "2024-03-02", "to": "2024-03-01"}, "must come before"),
    ],
)
def test_it_refuses_bad_requests(formats: list[str], filters: dict, message: str) -> None:
    with pytest.raises(ExportRequestInvalid, match=message):
        create_export(experiment=ExperimentFactory(), user=UserFactory(), formats=formats, filters=filters)
    assert not Export.objects.exists()


def test_an_increment_must_follow_a_success_of_the_same_experiment(played: Played) -> None:
    other = export_of(Played(ExperimentFactory(), [], [], played.version))
    with pytest.raises(ExportRequestInvalid, match="same experiment"):
        create_export(experiment=played.experiment, user=UserFactory(), formats=["clicks_csv"], filters={}, since=other)


def test_it_enqueues_on_commit_and_names_files_safely(played: Played, django_capture_on_commit_callbacks) -> None:
    with mock.patch.object(export_dataset_task, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        export = create_export(experiment=played.experiment, user=UserFactory(), formats=["maps_hdf5", "clicks_csv"],
                               filters={"from": "2024-03-01"})  # fmt: skip
        delay.assert_not_called()
    delay.assert_called_once_with(export.pk)
    assert export.formats == ["clicks_csv", "maps_hdf5", "manifest"] and export.status == Export.Status.PENDING
    with pytest.raises(FileNotFoundError):
        export_path(export, "clicks.csv")  # not written yet


@pytest.mark.usefixtures("eager_tasks")
def test_the_task_writes_the_export_end_to_end(played: Played, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(experiment=played.experiment, user=UserFactory(), formats=["clicks_csv"], filters={})
    export.refresh_from_db()
    assert export.status == Export.Status.SUCCEEDED and export_path(export, "clicks.csv").is_file()
    with pytest.raises(FileNotFoundError):
        export_path(export, "../manifest.json")


def test_the_task_records_a_failure_from_anywhere(played: Played) -> None:
    export = create_export(experiment=played.experiment, user=UserFactory(), formats=["clicks_csv"], filters={},
                           enqueue=False)  # fmt: skip
    with mock.patch("maps.export_tasks.run_export", side_effect=ValueError("broken")):
        export_dataset_task.apply(args=[export.pk], throw=False)  # as a worker runs it: failures go to on_failure
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED and export.error == "ValueError: broken"


def test_an_export_with_its_crops_is_a_training_set_on_its_own(played: Played, tmp_path: Path) -> None:
    export = export_of(played, ["maps_hdf5", "crops_hdf5"])
    with h5py.File(export_path(export, "crops.h5"), "r") as crops:
        assert sorted(crops["images"]) == ["beagle_01.JPEG", "tabby_cat_01.JPEG"]
        crop = crops["images/beagle_01.JPEG"]
        assert (crop.dtype, crop.shape, crop.attrs["class"]) == (np.uint8, (256, 256, 3), "beagle")
        image = played.experiment.image_set.images.get(name="beagle_01.JPEG")
        with image.crop.open("rb") as handle:
            np.testing.assert_array_equal(crop[()], np.asarray(Image.open(handle).convert("RGB")))
    directory = export_path(export, "maps.h5").parent
    dataset = ExportDataset(directory, split="all")  # no --images: the pixels come from the export
    assert len(dataset) == 2 and all(bool(dataset[i][3]) for i in range(2))
    flags = ["--epochs", "1", "--batch-size", "2", "--threads", "1", "--eval-bubbles", "10", "--val-fraction", "0"]
    out = train.main(["--maps", str(directory), "--cotrain", *flags, "--widths", "4", "8", "8", "8",
                      "--out", str(tmp_path / "from-export.pt")])  # fmt: skip
    assert out.exists()
