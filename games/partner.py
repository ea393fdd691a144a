"""The site's and workers' way to the partner model server, through model_server.client."""

from __future__ import annotations

from django.conf import settings

from games.models import PartnerModel, PartnerModelVersion
from model_server.client import PartnerClient


def live_client() -> PartnerClient:
    """A client for guesses shown while a player paints: one try, a short timeout.

    The player is waiting, so a slow partner must fail fast (503 to the browser) rather than
    stall the request; the authoritative score comes later from the worker anyway.
    """
    return PartnerClient(settings.MODEL_SERVER_URL, timeout=settings.MODEL_SERVER_TIMEOUT_MS / 1000, retries=0)


def scoring_client() -> PartnerClient:
    """A client for authoritative scoring in a worker: a longer timeout and a few retries."""
    return PartnerClient(settings.MODEL_SERVER_URL, timeout=30.0, retries=2, backoff=0.5)


def record_version(*, partner: PartnerModel, version: str, classes: list[str] | None = None) -> PartnerModelVersion:
    """The row of the partner version the model server named, created the first time it is seen."""
    row, _ = PartnerModelVersion.objects.get_or_create(
        partner=partner, version=version, defaults={"checkpoint": "", "classes": classes or []}
    )
    return row
