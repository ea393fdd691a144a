"""Export quotas per researcher (429 with Retry-After) and the retention cleanup of old exports' files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from games.tests.factories import UserFactory
from maps.export_limits import EXPIRED_NOTE, Cleanup, delete_expired_exports
from maps.models import Export
from maps.tasks import delete_expired_exports_task
from maps.tests.world import World, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world(participants=1)


def past_export(world: World, *, age: timedelta, status: str = Export.Status.SUCCEEDED, user=None, **fields) -> Export:
    """An export row of `world` created `age` ago (created_at is stamped at insert, so it is set after)."""
    defaults = {"formats": ["clicks_csv", "manifest"]}
    if status in (Export.Status.SUCCEEDED, Export.Status.FAILED):
        defaults["finished_at"] = timezone.now() - age
    if status == Export.Status.FAILED:
        defaults["error"] = "it broke"
    export = Export.objects.create(experiment=world.experiment, created_by=user or world.owner, status=status,
                                   **{**defaults, **fields})  # fmt: skip
    Export.objects.filter(pk=export.pk).update(created_at=timezone.now() - age)
    export.refresh_from_db()
    return export


def token_client(user) -> APIClient:
    """An API client with the user's token, as scripts send it (one token per user, made once)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def start_export(world: World, user=None):
    url = reverse("maps:api-exports", args=[world.experiment.slug])
    return token_client(user or world.owner).post(url, {"formats": ["clicks_csv"]}, format="json")


def test_past_the_daily_quota_the_api_answers_429_saying_when_to_retry(settings, world: World) -> None:
    settings.EXPORT_MAX_PER_DAY, settings.EXPORT_MAX_RUNNING = 3, 0
    for hours in (23, 5, 1):  # besides world's own export, made just now
        past_export(world, age=timedelta(hours=hours), status=Export.Status.FAILED)
    before = Export.objects.count()
    answer = start_export(world)
    assert answer.status_code == 429
    body = answer.json()
    # Four in the window (now, 1 h, 5 h, 23 h ago): below three once the third newest, made 5 h ago, turns 24 h old.
    assert 19 * 3600 - 60 <= int(answer["Retry-After"]) <= 19 * 3600
    assert body["retry_after"] == int(answer["Retry-After"])
    assert "4 exports in the last 24 hours" in body["detail"] and "EXPORT_MAX_PER_DAY = 3" in body["detail"]
    assert body["quota"] == {"running": 0, "max_running": 0, "last_day": 4, "max_per_day": 3}
    assert Export.objects.count() == before  # nothing stored


def test_exports_older_than_a_day_free_their_place(settings, world: World, eager_tasks) -> None:
    settings.EXPORT_MAX_PER_DAY, settings.EXPORT_MAX_RUNNING = 2, 0
    past_export(world, age=timedelta(hours=25))
    past_export(world, age=timedelta(days=3))
    assert start_export(world).status_code == 202  # world's export and this one: 2 in the window
    assert start_export(world).status_code == 429


def test_too_many_unfinished_exports_is_a_429_until_one_finishes(settings, world: World) -> None:
    settings.EXPORT_MAX_PER_DAY, settings.EXPORT_MAX_RUNNING = 0, 2
    queued = past_export(world, age=timedelta(minutes=1), status=Export.Status.PENDING)
    past_export(world, age=timedelta(minutes=2), status=Export.Status.RUNNING, started_at=timezone.now())
    answer = start_export(world)
    assert answer.status_code == 429 and answer["Retry-After"] == "30"
    assert "2 exports of yours still running is the most allowed at once" in answer.json()["detail"]
    Export.objects.filter(pk=queued.pk).update(status=Export.Status.FAILED, error="x", finished_at=timezone.now())
    Export.objects.filter(status=Export.Status.RUNNING).update(
        started_at=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)  # its worker is gone
    )
    assert start_export(world).status_code != 429


def test_quotas_are_per_researcher(settings, world: World) -> None:
    settings.EXPORT_MAX_PER_DAY = 1  # world's owner has used theirs
    colleague = UserFactory(username="carla")
    world.experiment.researchers.add(colleague)
    assert start_export(world).status_code == 429
    assert start_export(world, user=colleague).status_code != 429


def test_the_dashboard_shows_the_quota_and_the_retention(settings, client, world: World) -> None:
    settings.EXPORT_MAX_PER_DAY, settings.EXPORT_MAX_RUNNING, settings.EXPORT_RETENTION_DAYS = 20, 2, 30
    client.force_login(world.owner)
    page = client.get(reverse("maps:dashboard-experiment", args=[world.experiment.slug])).content.decode()
    assert "0 running (at most 2 at once), 1 started in the last 24 hours (at most 20)" in page
    assert "Files are kept 30 days." in page


def written(export: Export, root: Path) -> Path:
    directory = root / export.experiment.slug / f"{export.pk}-old"
    directory.mkdir(parents=True)
    (directory / "clicks.csv").write_bytes(b"x" * 1000)
    Export.objects.filter(pk=export.pk).update(
        directory=str(directory.relative_to(root)), files=[{"name": "clicks.csv", "bytes": 1000, "sha256": "0"}]
    )
    return directory


def test_cleanup_deletes_expired_files_keeps_their_rows_and_removes_failed_exports(settings, world: World) -> None:
    settings.EXPORT_RETENTION_DAYS = 30
    root = Path(settings.EXPORT_ROOT)
    old = past_export(world, age=timedelta(days=31))
    old_files = written(old, root)
    recent = past_export(world, age=timedelta(days=29))
    recent_files = written(recent, root)
    failed = past_export(world, age=timedelta(days=40), status=Export.Status.FAILED)
    abandoned = past_export(world, age=timedelta(days=40), status=Export.Status.RUNNING,
                            started_at=timezone.now() - timedelta(days=40))  # fmt: skip
    partial = root / world.experiment.slug / f"{abandoned.pk}-20250101T000000Z.partial"
    partial.mkdir(parents=True)
    (partial / "clicks.csv").write_bytes(b"y" * 500)
    running = past_export(world, age=timedelta(days=40), status=Export.Status.RUNNING, started_at=timezone.now())

    assert delete_expired_exports() == Cleanup(expired=1, deleted=2, bytes_freed=1500)

    old.refresh_from_db()
    assert not old_files.exists() and (old.files, old.directory, old.error) == ([], "", EXPIRED_NOTE)
    assert old.status == Export.Status.SUCCEEDED and old.dataset_version == ""  # the row stays, marked
    assert recent_files.exists() and Export.objects.get(pk=recent.pk).directory
    assert not Export.objects.filter(pk__in=[failed.pk, abandoned.pk]).exists() and not partial.exists()
    assert Export.objects.filter(pk=running.pk).exists()  # a live worker's export is never touched
    assert delete_expired_exports() == Cleanup(0, 0, 0)  # idempotent

    answer = token_client(world.owner).get(reverse("maps:api-export-file", args=[old.pk, "clicks.csv"]))
    assert answer.status_code == 404 and EXPIRED_NOTE in answer.json()["detail"]
    listed = token_client(world.owner).get(reverse("maps:api-export", args=[recent.pk])).json()
    assert listed["expires_at"].startswith((recent.created_at + timedelta(days=30)).date().isoformat())


def test_cleanup_never_deletes_outside_the_export_root(settings, world: World, tmp_path: Path) -> None:
    settings.EXPORT_RETENTION_DAYS = 1
    elsewhere = tmp_path / "operator-chose-this"
    elsewhere.mkdir()
    (elsewhere / "clicks.csv").write_bytes(b"z")
    old = past_export(world, age=timedelta(days=2), directory=str(elsewhere))
    assert delete_expired_exports().expired == 1
    assert (elsewhere / "clicks.csv").exists() and Export.objects.get(pk=old.pk).directory == ""


def test_retention_zero_keeps_everything_and_the_task_and_command_run_the_cleanup(settings, world: World,
                                                                                   capsys) -> None:  # fmt: skip
    settings.EXPORT_RETENTION_DAYS = 0
    old = past_export(world, age=timedelta(days=3650))
    written(old, Path(settings.EXPORT_ROOT))
    delete_expired_exports_task.apply()
    call_command("delete_expired_exports")
    assert Export.objects.get(pk=old.pk).directory
    assert "kept for ever" in capsys.readouterr().out
    settings.EXPORT_RETENTION_DAYS = 30
    delete_expired_exports_task.apply()  # no arguments: beat calls it as it is
    assert Export.objects.get(pk=old.pk).directory == ""
    call_command("delete_expired_exports")
    assert "0 exports' files deleted" in capsys.readouterr().out
