"""The export job's Celery task (imported by MapsConfig.ready, since autodiscovery reads only tasks.py)."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import OperationalError

from maps.export_jobs import record_export_failure, run_export


class ExportTask(Task):
    """Records a task's final failure on the export row, whatever raised it."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        export_id = kwargs.get("export_id", args[0] if args else None)
        if export_id is not None:
            record_export_failure(export_id=export_id, error=exc)


@shared_task(
    base=ExportTask,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=3,
)
def export_dataset_task(export_id: int) -> None:
    """Write one export (idempotent: a finished export is left alone, a failed one is written afresh)."""
    run_export(export_id=export_id)
