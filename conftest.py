"""Shared pytest fixtures: the suite runs on the project's own settings, adjusted only here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery._state import _set_task_join_will_block

from clickme_site.celery import app as celery_app


def pytest_configure(config: pytest.Config) -> None:
    """Adjust process-wide settings before any server thread reads them.

    The live server builds its middleware once, so these cannot wait for a per-test fixture:
    it speaks plain HTTP (no HTTPS redirect), and the hashed-manifest static storage would
    need `collectstatic`.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        # A file, not SQLite's shared in-memory database: that one answers concurrent writers
        # from the live server's threads with "table is locked" instead of waiting its turn.
        test_file = Path(tempfile.gettempdir()) / f"clickme-test-{os.getpid()}.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(test_file)
    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = False  # else live-server clients never send them
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _test_settings(settings: pytest.FixtureDef, tmp_path: Path) -> None:
    """Keep files in a temporary folder, hash passwords cheaply, and export what was just scored."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EXPORT_SETTLE_SECONDS = 0  # tests export rounds they scored a moment ago


def _tasks_in_process(value: bool) -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = value
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture
def broker_tasks() -> Iterator[None]:
    """Send Celery tasks to the broker, as a site with one does, even in a run without REDIS_URL (mock the sending)."""
    yield from _tasks_in_process(False)


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in-process, even when REDIS_URL points at a broker with no worker."""
    yield from _tasks_in_process(True)
    # Eager tasks running at once in the live server's threads can leave Celery's process-wide
    # "inside a task" flag set, after which any result.get() raises: clear it for later tests.
    _set_task_join_will_block(False)
