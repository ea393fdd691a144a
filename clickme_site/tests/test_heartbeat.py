"""A running Celery worker stamps its heartbeat by itself, without beat or a task, and /healthz says ok."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from clickme_site import heartbeat

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db
def test_a_started_worker_stamps_its_heartbeat_and_the_health_check_sees_it() -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: without a broker tasks run in-process and there is no worker")
    cache.delete(heartbeat.HEARTBEAT_KEY)
    assert Client().get("/healthz").json()["worker"] == "no heartbeat"
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "clickme_site", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--queues", "clickme-heartbeat-test"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while heartbeat.age_s() is None and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        body = Client().get("/healthz").json()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert body["worker"] == "ok" and body["worker_heartbeat_age_s"] < heartbeat.HEARTBEAT_STALE_S
