"""Liveness and readiness for load balancers, docker compose and operators: GET /healthz.

Served by a middleware placed first, because probes come from inside the network: with the
container's own address as Host and over plain HTTP, they would otherwise meet ALLOWED_HOSTS
and the HTTPS redirect before ever reaching a view.

Every component is reported (docs/operations.md, "Health"), but only the database is needed to
take rounds: without the cache, rate limits count in each process; without the broker, rounds are
stored and the sweep enqueues them when it returns; without the model server, players paint on
with no live guesses and scoring waits; without a worker, rounds wait to be scored. So the answer
is 503 only when the database cannot be reached, and otherwise 200 with `"status": "degraded"`
naming what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from clickme_site import heartbeat
from clickme_site.celery import app as celery_app
from games.models import Round
from games.partner import probe_client

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
PROBE_TIMEOUT_S = 1.0


class HealthCheckMiddleware:
    """Answer GET /healthz before host validation and HTTPS redirects."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.method == "GET":
            return healthz(request)
        return self.get_response(request)


def healthz(request: HttpRequest) -> JsonResponse:
    """Each component's state as JSON; 503 when the site cannot take rounds (no database)."""
    report: dict[str, object] = {"database": _database()}
    report["cache"] = _cache()
    report["broker"] = _broker()
    report["model_server"] = _model_server()
    report["worker"], report["worker_heartbeat_age_s"] = _worker()
    report["oldest_unscored_round_age_s"] = _oldest_unscored() if report["database"] == "ok" else None
    fine = {"ok", "in-process"}
    degraded = [name for name in ("cache", "broker", "model_server", "worker") if report[name] not in fine]
    if report["database"] != "ok":
        state, code = "unavailable", 503
    else:
        state, code = ("degraded", 200) if degraded else ("ok", 200)
    response = JsonResponse({"status": state, "degraded": degraded, **report}, status=code)
    response["Cache-Control"] = "no-store"
    if code == 503:
        response["Retry-After"] = str(settings.DATABASE_RETRY_AFTER_S)
    return response


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError as exc:
        logger.warning("health check: database unreachable: %s", exc)
        return "unreachable"


def _cache() -> str:
    try:
        cache.set("clickme:health-probe", 1, timeout=10)
        return "ok" if cache.get("clickme:health-probe") == 1 else "unreachable"
    except Exception as exc:  # the Redis client raises its own errors, not OSError
        logger.warning("health check: cache unreachable: %s", exc)
        return "unreachable"


def _broker() -> str:
    if not settings.REDIS_URL:
        return "in-process"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_S)
        return "ok"
    except Exception as exc:  # kombu's OperationalError is not an OSError
        logger.warning("health check: broker unreachable: %s", exc)
        return "unreachable"


def _model_server() -> str:
    try:
        with probe_client() as client:
            return "ok" if client.ready() else "not ready"
    except Exception as exc:
        logger.warning("health check: model server unreachable: %s", exc)
        return "unreachable"


def _worker() -> tuple[str, float | None]:
    if not settings.REDIS_URL:
        return "in-process", None
    try:
        age = heartbeat.age_s()
    except Exception:
        return "unknown", None  # the cache is down: its own entry says so
    if age is None:
        return "no heartbeat", None
    return ("ok" if age <= heartbeat.HEARTBEAT_STALE_S else "stale"), round(age, 1)


def _oldest_unscored() -> float | None:
    oldest = (
        Round.objects.filter(status=Round.Status.SUBMITTED)
        .order_by("submitted_at")
        .values_list("submitted_at", flat=True)
        .first()
    )
    return round((timezone.now() - oldest).total_seconds(), 1) if oldest else 0.0
