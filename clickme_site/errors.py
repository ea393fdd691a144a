"""A database that cannot be reached answers 503 with Retry-After, never a traceback.

Postgres restarting, a full connection pool or a locked SQLite file are brief: the browser's game
code retries transient answers and keeps its clicks queued meanwhile (static/games/api.js,
uploads.js), so the right answer is "come back in a few seconds", as JSON for the API and as a
small page for people. Two doors lead here, because Django converts an exception into a response
wherever it is raised: `DatabaseUnavailableMiddleware.process_exception` for errors in views
(also under DEBUG, which would otherwise show its technical page), and `server_error`, the
project's handler500, for errors raised in middleware (sessions, authentication) before any view.
See docs/operations.md, "Faults".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Errors that mean "the database is not there right now", not "the query is wrong".
UNAVAILABLE = (OperationalError, InterfaceError)
MESSAGE = "The site's database is briefly unavailable; nothing was stored. Retry in a few seconds."


def database_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 for `request`: JSON where the client asked for JSON (the API), a page otherwise."""
    retry_after = settings.DATABASE_RETRY_AFTER_S
    logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    if wants_json(request):
        body = {"error": MESSAGE, "retry_after": retry_after}
        response: HttpResponse = JsonResponse(body, status=503)
    else:
        # Rendered without the request: context processors would read the session and the user,
        # which live in the database that is down.
        page = render_to_string("503.html", {"retry_after": retry_after, "message": MESSAGE})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or "application/json" in accept


class DatabaseUnavailableMiddleware:
    """Turn a view's database-connection error into a 503 with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UNAVAILABLE):
            return database_unavailable(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage raised outside a view is a 503 too; anything else a plain 500."""
    exc = sys.exc_info()[1]
    if isinstance(exc, UNAVAILABLE):
        return database_unavailable(request, exc)
    page = render_to_string("500.html")
    return HttpResponseServerError(page)
