"""The ClickMe Django project; importing it makes the Celery app available to `@shared_task`."""

from __future__ import annotations

from clickme_site.celery import app as celery_app

__all__ = ["celery_app"]
