"""Celery application: configured from Django settings (CELERY_*) and discovering app tasks."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, worker_ready

from clickme_site import heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clickme_site.settings")

app = Celery("clickme")
app.config_from_object("django.conf:settings", namespace="CELERY")


@setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Make workers log exactly like the web process, through settings.LOGGING."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


app.autodiscover_tasks()
# Every worker stamps the cache from a thread of its main process; /healthz reads the stamp's age.
worker_ready.connect(heartbeat.start_beating, weak=False)
