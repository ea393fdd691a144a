"""Liveness and readiness for load balancers and docker compose health checks.

Served by a middleware placed first, because probes come from inside the network: with the
container's own address as Host and over plain HTTP, they would otherwise meet ALLOWED_HOSTS
and the HTTPS redirect before ever reaching a view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from clickme_site.celery import app as celery_app

logger = logging.getLogger(__name__)


HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    """Answer GET /healthz before host validation and HTTPS redirects."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.method == "GET":
            return healthz(request)
        return self.get_response(request)


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database (and the broker, when one is configured) can be reached."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as exc:
        logger.warning("health check: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    if settings.REDIS_URL:
        try:
            with celery_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except OSError as exc:
            logger.warning("health check: broker unreachable: %s", exc)
            checks["broker"] = "unreachable"
    else:
        checks["broker"] = "in-process"
    healthy = all(value in {"ok", "in-process"} for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)
