"""Celery tasks of the maps app: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from maps.export_limits import delete_expired_exports
from maps.services import build_requested_map
from maps.sweep import enqueue_stale_maps


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=5,
)
def build_click_map_task(experiment_id: int, image_id: int) -> None:
    """Recompute one image's map from its raw clicks (idempotent), then check it for a plateau."""
    build_requested_map(experiment_id=experiment_id, image_id=image_id)


@shared_task(ignore_result=True)
def sweep_stale_maps_task() -> None:
    """Periodically rebuild maps whose build task was lost (maps/sweep.py)."""
    enqueue_stale_maps()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=30, max_retries=3)
def delete_expired_exports_task() -> None:
    """Celery beat, hourly: delete the files of exports past EXPORT_RETENTION_DAYS (idempotent, no arguments)."""
    delete_expired_exports()
