"""Delete the files of exports older than EXPORT_RETENTION_DAYS (what Celery beat does every hour)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from maps.export_limits import delete_expired_exports


class Command(BaseCommand):
    help = (
        "Delete the files of exports older than EXPORT_RETENTION_DAYS (rows kept, marked) and remove failed or "
        "abandoned ones; safe to run any number of times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EXPORT_RETENTION_DAYS:
            self.stdout.write("EXPORT_RETENTION_DAYS is 0: exports are kept for ever, nothing to do.")
            return
        done = delete_expired_exports()
        self.stdout.write(
            f"{done.expired} exports' files deleted, {done.deleted} failed or abandoned exports removed, "
            f"{done.bytes_freed / 2**20:.1f} MiB freed (retention {settings.EXPORT_RETENTION_DAYS} days)."
        )
