"""The game's load benchmark (`manage.py bench_game`, `make bench`): simulated players against their limit.

One run measures, on the current settings' database (SQLite or Postgres):

1. the game over HTTP: `--players` simulated participants (devtools.simulation, played by
   devtools.players' Player) play rounds at once for `--seconds` against a site. Without
   `--url` the benchmark starts its own: gunicorn (gthread) and the partner model server as
   subprocesses on free ports. Reported: rounds submitted per second, and the latency of the
   partner's live guess (the request a player waits on while painting) and of the other calls;
2. the limit: the same rows (the rounds and their clicks) inserted straight into the database
   with the ORM's bulk_create, in one transaction, and the ratio of the two rates.

The rows the benchmark made (participants, sessions, rounds, clicks, guesses) are deleted at the
end unless `--keep`, and the images' counts are recomputed, so a development database is left
as it was.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from devtools.partner_process import DEMO_CHECKPOINT, ROOT, free_port, running, serve_partner, wait_until_ready
from devtools.players import Tally, check_database, percentile_row, simulate
from games.models import Click, Experiment, Participant, PlaySession, Round
from games.services.scoring import refresh_image_counts


@contextmanager
def own_site(*, checkpoint: Path, partner: str, web_workers: int, web_threads: int, log_dir: Path) -> Iterator[str]:
    """Start the partner model server and gunicorn on free ports, on this process's database and media."""
    with ExitStack() as stack:
        model = stack.enter_context(
            serve_partner(checkpoint=checkpoint, name=partner, image_root=Path(settings.MEDIA_ROOT),
                          log_path=log_dir / "bench-model.log")
        )  # fmt: skip
        wait_until_ready(model, timeout=120)
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "MODEL_SERVER_URL": model.url,
            # The players speak plain HTTP on loopback: no HTTPS redirect, no Secure-only cookies.
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "LOG_LEVEL": "WARNING",  # a line per request would cost the site more than it measures
        }
        web_port = free_port()
        url = f"http://127.0.0.1:{web_port}"
        web = [sys.executable, "-m", "gunicorn", "clickme_site.wsgi", "--bind", f"127.0.0.1:{web_port}",
               "--worker-class", "gthread", "--workers", str(web_workers), "--threads", str(web_threads),
               "--log-level", "warning"]  # fmt: skip
        site = stack.enter_context(
            running(web, url=url, ready_url=f"{url}/healthz", log_path=log_dir / "bench-web.log", env=env)
        )
        wait_until_ready(site, timeout=120)
        yield site.url


@dataclass(frozen=True)
class InsertLimit:
    """How fast the database takes the same rows through bulk_create."""

    rounds: int
    clicks: int
    seconds: float


def insert_limit(rounds: list[Round], repeats: int = 3) -> InsertLimit:
    """Insert copies of `rounds` and their clicks with bulk_create in one transaction; the best of `repeats`.

    The best, not the mean: this is the limit the game is compared with, and a busy machine only
    ever makes a run slower. Each run's rows are deleted again after it.
    """
    clicks_of: dict[int, list[tuple[int, int, int]]] = {}
    for round_id, x, y, t_ms in (
        Click.objects.filter(round__in=rounds).order_by("round", "seq").values_list("round_id", "x", "y", "t_ms")
    ):
        clicks_of.setdefault(round_id, []).append((x, y, t_ms))
    best = float("inf")
    for _ in range(repeats):
        # Copies go into twins of their sessions (an image plays once per session, one round per
        # place): the same rows the game writes.
        originals = PlaySession.objects.in_bulk({r.session_id for r in rounds})
        start = time.perf_counter()
        with transaction.atomic():
            twins = {}
            for pk, session in originals.items():
                session.pk = None
                twins[pk] = session
            PlaySession.objects.bulk_create(twins.values())
            copies = [
                Round(session_id=twins[r.session_id].pk, participant_id=r.participant_id,
                      experiment_id=r.experiment_id, image_id=r.image_id, client_round_id=uuid.uuid4(),
                      position=r.position, settings=r.settings, bubble_count=len(clicks_of.get(r.pk, [])))
                for r in rounds
            ]  # fmt: skip
            Round.objects.bulk_create(copies, batch_size=500)  # SQLite and Postgres return the new ids
            clicks = [
                Click(round=copy, seq=seq, x=x, y=y, t_ms=t_ms)
                for original, copy in zip(rounds, copies, strict=True)
                for seq, (x, y, t_ms) in enumerate(clicks_of.get(original.pk, []))
            ]
            Click.objects.bulk_create(clicks, batch_size=2000)
        best = min(best, time.perf_counter() - start)
        Round.objects.filter(pk__in=[copy.pk for copy in copies]).delete()
        PlaySession.objects.filter(pk__in=[twin.pk for twin in twins.values()]).delete()
    return InsertLimit(rounds=len(rounds), clicks=sum(map(len, clicks_of.values())), seconds=best)


def clean_up(tally: Tally) -> int:
    """Delete what the benchmark's participants made and recompute the counts of the images they played."""
    sessions = PlaySession.objects.filter(pk__in=tally.sessions)
    participants = list(sessions.values_list("participant_id", flat=True).distinct())
    images = set(Round.objects.filter(session__in=sessions).values_list("image_id", flat=True))
    with transaction.atomic():
        deleted, _ = Round.objects.filter(session__in=sessions).delete()
        PlaySession.objects.filter(participant__in=participants).delete()
        Participant.objects.filter(pk__in=participants).delete()
    for image_id in images:
        refresh_image_counts(image_id=image_id)
    return deleted


def database_label() -> str:
    """Which database the benchmark writes to, in a few words."""
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"SQLite {db['NAME']}"
    return f"{connection.vendor} {db.get('HOST') or 'local'}/{db['NAME']}"


def run(
    *,
    players: int = 64,
    seconds: float = 20.0,
    url: str | None = None,
    slug: str = "demo",
    checkpoint: Path | None = None,
    web_workers: int | None = None,
    web_threads: int = 8,
    seed: int = 0,
    keep: bool = False,
    log_dir: Path | None = None,
    out: TextIO = sys.stdout,
) -> dict[str, float]:
    """Run the whole benchmark, print its table to `out`, and return the headline numbers."""

    def say(line: str = "") -> None:
        out.write(line + "\n")
        out.flush()

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the table

    if not Experiment.objects.filter(slug=slug, status=Experiment.Status.LIVE).exists():
        if slug != "demo":
            raise RuntimeError(f"there is no live experiment {slug!r}")
        say("no demo experiment yet: running seed_demo")
        call_command("seed_demo", "--no-progress", stdout=out)
    experiment = Experiment.objects.select_related("partner").get(slug=slug)
    web_workers = web_workers or min(8, 2 * (os.cpu_count() or 1) + 1)
    scoring = "in the web process (no broker)" if settings.CELERY_TASK_ALWAYS_EAGER else "left to Celery workers"
    with ExitStack() as stack:
        if url is None:
            if not settings.DEBUG and not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists():
                # With DEBUG off the pages need the hashed static manifest, or they answer 500.
                say("collecting static files (DEBUG is off)")
                call_command("collectstatic", "--noinput", verbosity=0)
            checkpoint = checkpoint or DEMO_CHECKPOINT
            if not checkpoint.exists():
                raise RuntimeError(f"no checkpoint {checkpoint}: train it (make run does) or pass --checkpoint")
            log_dir = log_dir or ROOT / "var"
            log_dir.mkdir(parents=True, exist_ok=True)
            say(f"starting gunicorn ({web_workers} workers × {web_threads} threads) and the model server "
                f"({checkpoint.name}); logs in {log_dir}")  # fmt: skip
            url = stack.enter_context(
                own_site(checkpoint=checkpoint, partner=experiment.partner.name, web_workers=web_workers,
                         web_threads=web_threads, log_dir=log_dir)
            )  # fmt: skip
        say(f"{players} players for {seconds:g} s against {url}; database: {database_label()}; scoring {scoring}")
        say(f"this machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run")
        # Warm up: the model server's first batches, gunicorn's imports and connections.
        warm, _ = simulate(url=url, slug=slug, players=4, concurrency=4, seed=seed + 1, rounds=1, think_ms=0,
                           skip_rate=0, score_timeout=0)  # fmt: skip
        start = time.monotonic()
        tally, _ = simulate(url=url, slug=slug, players=players, concurrency=players, seed=seed,
                                 seconds=seconds, think_ms=0, score_timeout=0)  # fmt: skip
    # Rounds begun before the end are played out: the rate is over the time until the last submit.
    played_s = max(tally.submitted_at, default=start + seconds) - start
    submitted = list(Round.objects.filter(client_round_id__in=[p.client_round_id for p in tally.rounds if p.status]))
    limit = insert_limit(submitted)
    check = check_database(tally.rounds) if settings.CELERY_TASK_ALWAYS_EAGER else None
    http_rate = len(submitted) / played_s
    limit_rate = limit.rounds / limit.seconds if limit.seconds else float("inf")
    clicks = sum(r.bubble_count for r in submitted)
    guesses = tally.latencies.get("guess", [])
    p50, p99 = np.percentile(np.asarray(guesses) * 1000, [50, 99]) if guesses else (float("nan"), float("nan"))

    say()
    say(f"{'':<38}{'rounds':>8}{'clicks':>9}{'seconds':>10}{'rounds/s':>11}")
    say(f"{f'game over HTTP, {players} players':<38}{len(submitted):>8}{clicks:>9}{played_s:>10.1f}{http_rate:>11.1f}")
    say(f"{'limit: ORM bulk_create, same rows':<38}{limit.rounds:>8}{limit.clicks:>9}{limit.seconds:>10.3f}"
        f"{limit_rate:>11.0f}")  # fmt: skip
    say(f"{'ratio HTTP / limit':<38}{'':>8}{'':>9}{'':>10}{http_rate / limit_rate:>10.2%}")
    say()
    say(f"{'latency (ms)':<12}{'n':>8}  {'p50':>8}  {'p90':>8}  {'p99':>8}")
    for endpoint in ("guess", "clicks", "submit", "start", "image"):
        say(f"{endpoint:<14}{percentile_row(tally.latencies.get(endpoint, []))}")
    everything = tally.errors + warm.errors
    # A 503 guess is the site shedding load as designed (the partner missed the live deadline):
    # a result to report. Anything else is a fault, and fails the run.
    shed = everything.pop("guess 503", 0)
    errors = sum(everything.values())
    say()
    say(f"guesses shed (503, partner past its live deadline): {shed} of {len(guesses)}")
    for event, count in sorted((tally.events + warm.events).items()):
        say(f"{event}: {count} (not an error)")
    say(f"errors: {errors}" + "".join(f"\n  {kind}: {count}" for kind, count in sorted(everything.items())))
    if check is not None:
        say(f"database check: {check.complete} of {check.rounds} rounds scored with their guesses and version")
    if not keep:
        say(f"cleaned up {clean_up(tally) + clean_up(warm)} rows the benchmark made (--keep to keep them)")
    return {
        "rounds_per_s": http_rate,
        "limit_rounds_per_s": limit_rate,
        "ratio": http_rate / limit_rate,
        "guess_p50_ms": float(p50),
        "guess_p99_ms": float(p99),
        "guesses_shed": shed,
        "errors": errors,
    }
