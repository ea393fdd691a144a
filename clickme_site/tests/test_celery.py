"""Celery reaches a real broker when REDIS_URL is set, and runs tasks in-process otherwise."""

from __future__ import annotations

import time

import celery.contrib.testing.tasks  # noqa: F401  (registers the built-in "celery.ping" task)
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from clickme_site.celery import app


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")
def test_a_real_worker_answers_and_consumes_tasks_through_redis() -> None:
    queue = redis.Redis.from_url(settings.REDIS_URL)
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            # A broadcast over the broker, answered by the worker: no result backend needed.
            assert any("pong" in str(reply) for reply in app.control.ping(timeout=5))
            app.tasks["celery.ping"].delay()
            deadline = time.monotonic() + 10
            while queue.llen("celery") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert queue.llen("celery") == 0, "the worker never took the task off the queue"
    finally:
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="the embedded default has no REDIS_URL")
def test_without_a_broker_tasks_run_in_process() -> None:
    assert app.conf.task_always_eager is True
    assert app.tasks["celery.ping"].delay().get() == "pong"
