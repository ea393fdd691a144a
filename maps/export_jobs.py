"""Dataset export jobs: validate and enqueue a request, run it into a new directory, find its files.

Design: docs/running-a-study.md.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from clickme_site.tasks_enqueue import enqueue_on_commit
from games.models import Experiment
from maps.export_limits import check_quota
from maps.exports import (
    FILE_NAMES,
    MANIFEST,
    QUALITY,
    ProgressCallback,
    Window,
    dataset_version,
    manifest_maps,
    write_dataset,
)
from maps.models import Export

logger = logging.getLogger(__name__)

FORMATS = (*FILE_NAMES, "manifest")  # the manifest is always written; the command may name it
DATA_FORMATS = tuple(FILE_NAMES)  # what the API offers: the manifest comes with each of them
FILTERS = ("from", "to", "quality")
EXPORT_TASK = "maps.export_tasks.export_dataset_task"  # registered by MapsConfig.ready()
PROGRESS_EVERY_S = 1.0  # how often a running export writes its progress to its row


class ExportRequestInvalid(ValueError):
    """A format, filter or base export that cannot be exported; the message says which and why."""


def last_successful_export(*, experiment: Experiment) -> Export | None:
    """The experiment's most recent successful export: the base of a "since the last export" increment."""
    return experiment.exports.filter(status=Export.Status.SUCCEEDED).order_by("-started_at").first()


def clean_formats(formats: list[str]) -> list[str]:
    """The requested formats in canonical order, manifest included, or ExportRequestInvalid."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportRequestInvalid(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if not set(formats) - {"manifest"}:
        raise ExportRequestInvalid(f"choose at least one data format from {', '.join(FORMATS[:-1])}")
    return [name for name in FORMATS if name in formats or name == "manifest"]


def _parse_moment(name: str, value: object) -> date | datetime:
    if isinstance(value, date):  # datetime is a date too
        return value
    text = str(value)
    try:
        parsed = parse_date(text) or parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ExportRequestInvalid(f"filter {name!r} must be a date (YYYY-MM-DD) or an ISO 8601 datetime, not {text!r}")
    return parsed


def _bound(moment: date | datetime, *, end: bool) -> datetime:
    # Dates are whole UTC days, inclusive at both ends; datetimes are instants, inclusive too.
    try:
        if isinstance(moment, datetime):
            aware = moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
            return (aware + timedelta(microseconds=1) if end else aware).astimezone(UTC)
        day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    except OverflowError:  # within a day of year 1 or 9999: the bound is the end of time that way
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def clean_filters(filters: dict[str, Any]) -> dict[str, str]:
    """Filters as stored on the job: quality state (default valid) and ISO dates, or ExportRequestInvalid."""
    if not isinstance(filters, dict):
        raise ExportRequestInvalid("filters must be an object")
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise ExportRequestInvalid(f"unknown filter(s) {', '.join(unknown)}; use {', '.join(FILTERS)}")
    quality = filters.get("quality") or "valid"
    if not isinstance(quality, str) or quality not in QUALITY:
        raise ExportRequestInvalid(f"quality must be one of {', '.join(QUALITY)}, not {quality!r}")
    cleaned = {"quality": quality}
    moments = {name: _parse_moment(name, filters[name]) for name in ("from", "to") if filters.get(name)}
    if len(moments) == 2 and _bound(moments["from"], end=False) >= _bound(moments["to"], end=True):
        raise ExportRequestInvalid("filter 'from' must come before 'to'")
    cleaned.update({name: moment.isoformat() for name, moment in moments.items()})
    return cleaned


def create_export(*, experiment: Experiment, user: AbstractBaseUser, formats: list[str], filters: dict[str, Any],
                  since: Export | None = None, enqueue: bool = True, quota: bool = True) -> Export:  # fmt: skip
    """Record an export job and hand it to the workers once the transaction commits.

    With `quota` (the API and the dashboard; not the operator's `export_dataset` command), the
    researcher's limits apply: export_limits.ExportQuotaExceeded when they are reached.
    """
    if since is not None and (since.experiment_id != experiment.pk or since.status != Export.Status.SUCCEEDED):
        raise ExportRequestInvalid("an increment must follow a successful export of the same experiment")
    formats, filters = clean_formats(formats), clean_filters(filters)
    with transaction.atomic():
        if quota:
            # The researcher's row, locked: two requests at once cannot both take the last place.
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            check_quota(user)
        export = Export.objects.create(experiment=experiment, created_by=user, formats=formats, filters=filters,
                                       since=since)  # fmt: skip
    if enqueue:
        enqueue_on_commit(
            EXPORT_TASK, export.pk, purpose=f"write export {export.pk}", log=logger,
            on_broker_error=functools.partial(_queue_unreachable, export.pk),
        )  # fmt: skip
    logger.info("export %s of %s requested: %s", export.pk, experiment.slug, ", ".join(export.formats))
    return export


def _queue_unreachable(export_id: int, error: Exception) -> None:
    # Nothing sweeps pending exports: the row says the job failed, and the researcher asks again.
    record_export_failure(export_id=export_id, error=f"could not reach the task queue: {error}")


def record_export_failure(*, export_id: int, error: BaseException | str) -> None:
    """Mark an unfinished export failed with its error message (a succeeded export is left alone)."""
    message = (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
    if isinstance(error, BaseException):
        message = f"{type(error).__name__}: {message}"
    Export.objects.filter(pk=export_id).exclude(status=Export.Status.SUCCEEDED).update(
        status=Export.Status.FAILED, error=message[:10_000], finished_at=timezone.now()
    )


def _claim(export_id: int) -> Export | None:
    # One conditional UPDATE decides who runs: a duplicate delivery of the task finds the job
    # running and leaves. A job still "running" after the hard time limit lost its worker.
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimable = Q(status__in=[Export.Status.PENDING, Export.Status.FAILED]) | Q(
        status=Export.Status.RUNNING, started_at__lt=stale
    )
    claimed = Export.objects.filter(claimable, pk=export_id).update(
        status=Export.Status.RUNNING, started_at=now, finished_at=None, error="", progress=0.0, counts={}, files=[],
        directory="",
    )  # fmt: skip
    return Export.objects.select_related("experiment", "since").get(pk=export_id) if claimed else None


def _window(export: Export) -> Window:
    # Every export stops at its own cutoff (its start less the settle time), so "since the last
    # export" increments tile time exactly: [previous cutoff, own cutoff) on the moment each round
    # became final (exports.Window).
    moments = {name: _parse_moment(name, export.filters[name]) for name in ("from", "to") if export.filters.get(name)}
    start = _bound(moments["from"], end=False) if "from" in moments else None
    end = _bound(moments["to"], end=True) if "to" in moments else None
    cutoff = export.started_at - timedelta(seconds=settings.EXPORT_SETTLE_SECONDS)
    return Window(start=start, end=end, cutoff=cutoff, after=_cutoff_of(export.since) if export.since else None)


def _cutoff_of(export: Export) -> datetime:
    """Where an earlier export stopped: its recorded cutoff (exports before the settle time stopped at their start)."""
    recorded = (export.parameters or {}).get("window", {}).get("cutoff")
    return datetime.fromisoformat(recorded) if recorded else export.started_at


def _progress_recorder(export_id: int, also: ProgressCallback | None) -> ProgressCallback:
    last = -PROGRESS_EVERY_S

    def record(done: int, total: int, counts: dict[str, int]) -> None:
        nonlocal last
        if also is not None:
            also(done, total, counts)
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            fraction = min(done / total, 0.99) if total else 0.0  # 1.0 only once the files are in place
            Export.objects.filter(pk=export_id, status=Export.Status.RUNNING).update(
                progress=fraction, counts=dict(counts)
            )

    return record


def run_export(*, export_id: int, root: Path | None = None, on_progress: ProgressCallback | None = None) -> Export:
    """Write a pending (or failed) export into a new directory and mark it succeeded; otherwise do nothing.

    Files go to `<root>/<experiment>/<id>-<started>.partial/`, renamed without the suffix once
    complete, and only then is the job marked succeeded. Any error marks it failed with the
    message, removes what was written, and is raised again.
    """
    from maps import export_writers as writers  # pyarrow and h5py: loaded by workers, not by every web process

    export = _claim(export_id)
    if export is None:  # finished already, or running in another worker
        return Export.objects.get(pk=export_id)
    logger.info("export %s of %s started", export.pk, export.experiment.slug)
    export_root = Path(settings.EXPORT_ROOT)
    root = Path(root) if root else export_root
    final = root / export.experiment.slug / f"{export.pk}-{export.started_at:%Y%m%dT%H%M%S%fZ}"
    partial = final.with_name(final.name + ".partial")
    try:
        partial.mkdir(parents=True)
        window = _window(export)
        files, counts, parameters = write_dataset(
            export=export, directory=partial, window=window, on_progress=_progress_recorder(export.pk, on_progress)
        )
        version = dataset_version(export, files)
        export.parameters = {"maps": parameters, "window": window.as_dict()}
        writers.write_json(partial / MANIFEST, manifest(export, files=files, counts=counts, version=version))
        files.append(writers.file_digest(partial / MANIFEST))
        partial.rename(final)
        directory = final.relative_to(export_root) if final.is_relative_to(export_root) else final
        ours = Export.objects.filter(pk=export.pk, status=Export.Status.RUNNING, started_at=export.started_at)
        finished = ours.update(
            status=Export.Status.SUCCEEDED, progress=1.0, counts=counts, files=files, parameters=export.parameters,
            dataset_version=version, directory=str(directory), finished_at=timezone.now(),
        )  # fmt: skip
        if not finished:
            raise RuntimeError("the export was taken over by another run while it was being written")
    except Exception as error:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        record_export_failure(export_id=export.pk, error=error)
        logger.exception("export %s failed", export.pk)
        raise
    logger.info("export %s written to %s: %s", export.pk, final, counts)
    return Export.objects.get(pk=export.pk)


def manifest(export: Export, *, files: list[dict], counts: dict[str, int], version: str) -> dict[str, Any]:
    """What the dataset is, how it was selected and made, and a checksum of every other file in it."""
    from maps.export_writers import COLUMN_DOCS

    described = manifest_maps(export)  # reliability and maps entries: maps/exports.py
    since = export.since
    return {
        "dataset_version": version,
        "export_id": export.pk,
        "experiment": {"slug": export.experiment.slug, "title": export.experiment.title},
        "created_at": export.created_at.isoformat(),
        "started_at": export.started_at.isoformat(),
        "formats": export.formats,
        "filters": export.filters,
        "since": {"export_id": since.pk, "dataset_version": since.dataset_version} if since else None,
        "parameters": export.parameters,
        "counts": counts,
        "reliability": described["reliability"],
        "participants": "pseudonymous usernames; no panel id, address or account is exported",
        "columns": COLUMN_DOCS,
        "maps": described["maps"],
        "files": files,
    }


def export_path(export: Export, name: str) -> Path:
    """The path of one of a finished export's files, by the name its manifest gives (FileNotFoundError if none)."""
    if name not in {entry["name"] for entry in export.files} or not export.directory:
        raise FileNotFoundError(f"export {export.pk} has no file {name!r}")
    directory = Path(export.directory)
    directory = directory if directory.is_absolute() else Path(settings.EXPORT_ROOT) / directory
    path = directory / name
    # Names come from the writers, never from a request, but a path must not leave its directory anyway.
    if path.resolve().parent != directory.resolve():
        raise FileNotFoundError(f"export {export.pk} has no file {name!r}")
    return path
