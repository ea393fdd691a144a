"""`manage.py simulate_players` run against a live test site, and the numbers read back from its report."""

from __future__ import annotations

import io
import re

from django.core.management import call_command
from django.db import connection


def simulate(live_server, *args: str) -> str:
    out = io.StringIO()
    # The live server shares the test's one connection when the test database is in-memory
    # SQLite, so requests must not overlap there; on a file or Postgres, players run at once.
    in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
    call_command(
        "simulate_players", "--url", live_server.url, "--no-progress", "--think-ms", "0", "--seed", "5",
        "--concurrency", "1" if in_memory else "3", *args, stdout=out,
    )  # fmt: skip
    return out.getvalue()


def number(report: str, label: str) -> int:
    return int(re.search(rf"^{re.escape(label)}\s+(\d+)", report, re.M).group(1))
