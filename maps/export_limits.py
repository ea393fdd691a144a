"""How many exports a researcher may start, and how long their files are kept (docs/running-a-study.md, "Export").

Quotas count the existing Export rows of the researcher who asked (`created_by`): those still
unfinished (pending or running) and those created in the last 24 hours. Retention deletes the
files of exports older than EXPORT_RETENTION_DAYS and keeps their row (its counts, dataset
version and window stay the base of "since the last export" increments); failed and abandoned
ones, which have no files, are deleted whole.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from maps.models import Export

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
RUNNING_RETRY_SECONDS = 30  # what a 429 for too many running exports suggests: most finish within a minute
EXPIRED_NOTE = "files deleted after the retention period (EXPORT_RETENTION_DAYS)"


class ExportQuotaExceeded(Exception):
    """The researcher may not start another export now; says why, and in how many seconds to try again."""

    def __init__(self, message: str, *, retry_after: int, usage: QuotaUsage) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.usage = usage


@dataclass(frozen=True)
class QuotaUsage:
    """A researcher's exports against the limits (0 = no limit)."""

    running: int
    max_running: int
    last_day: int
    max_per_day: int

    def as_dict(self) -> dict[str, int]:
        return {"running": self.running, "max_running": self.max_running, "last_day": self.last_day,
                "max_per_day": self.max_per_day}  # fmt: skip


def _unfinished(now: datetime) -> Q:
    # An export unfinished past the task's hard time limit lost its worker (export_jobs._claim
    # takes it over): it no longer holds a place.
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    pending = Q(status=Export.Status.PENDING, created_at__gte=stale)
    return pending | Q(status=Export.Status.RUNNING, started_at__gte=stale)


def quota_usage(user: AbstractBaseUser, *, now: datetime | None = None) -> QuotaUsage:
    """How many exports the user has unfinished and has created in the last 24 hours."""
    now = now or timezone.now()
    mine = Export.objects.filter(created_by_id=user.pk)
    return QuotaUsage(
        running=mine.filter(_unfinished(now)).count(), max_running=settings.EXPORT_MAX_RUNNING,
        last_day=mine.filter(created_at__gt=now - DAY).count(), max_per_day=settings.EXPORT_MAX_PER_DAY,
    )  # fmt: skip


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _in(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def check_quota(user: AbstractBaseUser, *, now: datetime | None = None) -> QuotaUsage:
    """The user's usage if they may start one more export, else ExportQuotaExceeded.

    Call it inside the transaction that creates the export, with the user's row locked, so that
    two requests at once cannot both take the last place.
    """
    now = now or timezone.now()
    usage = quota_usage(user, now=now)
    if usage.max_per_day and usage.last_day >= usage.max_per_day:
        window = Export.objects.filter(created_by_id=user.pk, created_at__gt=now - DAY).order_by("-created_at")
        # The place that frees first: when the oldest export still counted turns 24 hours old.
        freeing = window.values_list("created_at", flat=True)[usage.max_per_day - 1]
        wait = max(1, math.ceil((freeing + DAY - now).total_seconds()))
        raise ExportQuotaExceeded(
            f"You have started {_count(usage.last_day, 'export')} in the last 24 hours, the most allowed "
            f"(EXPORT_MAX_PER_DAY = {usage.max_per_day}); you can start the next one in {_in(wait)}.",
            retry_after=wait, usage=usage,
        )  # fmt: skip
    if usage.max_running and usage.running >= usage.max_running:
        raise ExportQuotaExceeded(
            f"{_count(usage.running, 'export')} of yours still running is the most allowed at once "
            f"(EXPORT_MAX_RUNNING = {usage.max_running}); start this one when one of them has finished.",
            retry_after=RUNNING_RETRY_SECONDS, usage=usage,
        )  # fmt: skip
    return usage


def expires_at(export: Export) -> datetime | None:
    """When the export's files will be deleted; None when exports are kept for ever (retention 0)."""
    days = settings.EXPORT_RETENTION_DAYS
    return export.created_at + timedelta(days=days) if days and export.created_at else None


def _expired(now: datetime) -> QuerySet[Export]:
    return Export.objects.filter(created_at__lt=now - timedelta(days=settings.EXPORT_RETENTION_DAYS))


def _remove(directory: Path) -> int:
    """Delete a directory under EXPORT_ROOT and say how many bytes it held; anything outside is left alone."""
    root = Path(settings.EXPORT_ROOT).resolve()
    directory = directory.resolve()
    if not directory.is_relative_to(root) or directory == root or not directory.is_dir():
        return 0
    size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    shutil.rmtree(directory, ignore_errors=True)
    return size


@dataclass(frozen=True)
class Cleanup:
    expired: int  # succeeded exports whose files were deleted (rows kept, marked)
    deleted: int  # failed or abandoned exports deleted whole
    bytes_freed: int


def delete_expired_exports(*, now: datetime | None = None) -> Cleanup:
    """Delete the files of exports older than the retention period; idempotent (a second run finds nothing).

    Succeeded exports keep their row, marked: no files, no directory, `error` saying why. Failed
    and abandoned (unfinished past the task time limit) exports are deleted, with any partial
    directory a killed worker left. Running ones are never touched. Retention 0 keeps everything.
    """
    if not settings.EXPORT_RETENTION_DAYS:
        return Cleanup(0, 0, 0)
    now = now or timezone.now()
    root = Path(settings.EXPORT_ROOT)
    expired = deleted = freed = 0
    for export in _expired(now).filter(status=Export.Status.SUCCEEDED).exclude(directory="").select_related(
        "experiment"
    ):  # fmt: skip
        directory = Path(export.directory)
        freed += _remove(directory if directory.is_absolute() else root / directory)
        # Conditional: a concurrent cleanup that got here first leaves nothing to count twice.
        expired += (
            Export.objects.filter(pk=export.pk).exclude(directory="").update(files=[], directory="", error=EXPIRED_NOTE)
        )
    abandoned = _expired(now).filter(Q(status=Export.Status.FAILED) | (
        Q(status__in=[Export.Status.PENDING, Export.Status.RUNNING]) & ~_unfinished(now)))  # fmt: skip
    for export in abandoned.select_related("experiment"):
        for partial in (root / export.experiment.slug).glob(f"{export.pk}-*.partial"):
            freed += _remove(partial)
    deleted = abandoned.delete()[1].get(Export._meta.label, 0)
    if expired or deleted:
        logger.info("export retention: %d exports' files deleted, %d exports removed, %d bytes freed",
                    expired, deleted, freed)  # fmt: skip
    return Cleanup(expired, deleted, freed)
