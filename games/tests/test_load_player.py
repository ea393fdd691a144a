"""The load harness's Locust player (bench/player.py) against a live site: it stores and submits rounds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devtools.partner_process import ROOT
from games.models import Round

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_locust_player_plays_stores_and_submits_rounds(
    live_server, demo, partner_process, settings, tmp_path, eager_tasks
):
    # eager_tasks: with REDIS_URL (CI's Postgres run) scoring would wait in a broker no worker reads.
    # Locust monkey-patches the interpreter with gevent, so it runs in its own process; one player,
    # because the live server shares one in-memory SQLite connection.
    env = {**os.environ, "BENCH_MEDIA_ROOT": str(settings.MEDIA_ROOT), "BENCH_PANEL_SHARE": "0"}
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
               "--host", live_server.url, "--users", "1", "--spawn-rate", "1", "--run-time", "14s",
               "--csv", str(tmp_path / "load"), "--only-summary", "--stop-timeout", "10"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, check=False, capture_output=True, timeout=90, text=True)

    submitted = Round.objects.filter(experiment=demo, status__in=["submitted", "scored"])
    assert submitted.count() >= 1, done.stderr[-3000:]
    assert all(round_.bubble_count > 0 or round_.outcome == "skipped" for round_ in submitted)
    assert Round.objects.filter(experiment=demo, status="scored").count() >= 1
    stats = (tmp_path / "load_stats.csv").read_text()
    assert "guess" in stats and "submit" in stats
