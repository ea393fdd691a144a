"""Celery reaches a real broker when REDIS_URL is set, and runs tasks in-process otherwise."""

from __future__ import annotations

import celery.contrib.testing.tasks  # noqa: F401  (registers the built-in "celery.ping" task)
import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from clickme_site.celery import app


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")
def test_a_real_worker_takes_a_task_through_redis() -> None:
    app.conf.update(task_always_eager=False, result_backend=settings.REDIS_URL)
    try:
        # start_worker pings the worker through the broker and waits for the reply.
        with start_worker(app, pool="solo", perform_ping_check=True, shutdown_timeout=10):
            assert app.tasks["celery.ping"].delay().get(timeout=10) == "pong"
    finally:
        app.conf.update(task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER, result_backend=None)


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="the embedded default has no REDIS_URL")
def test_without_a_broker_tasks_run_in_process() -> None:
    assert app.conf.task_always_eager is True
    assert app.tasks["celery.ping"].delay().get() == "pong"
