"""The site's and workers' way to the partner model server, through model_server.client."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

from games.models import Experiment, PartnerModel, PartnerModelVersion
from model_server.client import PartnerClient

# One client per process and configuration, kept for the life of the process, so that guesses
# reuse its pooled keep-alive connections instead of opening a new client and connection each
# time. httpx.Client (under PartnerClient) is safe to share between the threads of a gthread
# worker or the live test server. The key holds the settings, which tests change between tests
# (each has its own partner server), and the process id, so that a child forked after a client
# was made never shares that client's sockets with its parent.
_clients: dict[tuple[int, str, float, int, float], PartnerClient] = {}
_clients_lock = threading.Lock()


def _shared_client(*, timeout: float, retries: int, backoff: float) -> PartnerClient:
    key = (os.getpid(), settings.MODEL_SERVER_URL, timeout, retries, backoff)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = PartnerClient(key[1], timeout=timeout, retries=retries, backoff=backoff)
            _clients[key] = client
    return client


@contextmanager
def live_client() -> Iterator[PartnerClient]:
    """The client for guesses shown while a player paints: one try, a short timeout.

    The player is waiting, so a slow partner must fail fast (503 to the browser) rather than
    stall the request; the authoritative score comes later from the worker anyway. Use it as
    `with live_client() as client:`; the block leaves the shared client open.
    """
    yield _shared_client(timeout=settings.MODEL_SERVER_TIMEOUT_MS / 1000, retries=0, backoff=0.2)


@contextmanager
def scoring_client() -> Iterator[PartnerClient]:
    """The client for authoritative scoring in a worker: a longer timeout and a few retries (shared, as above)."""
    yield _shared_client(timeout=30.0, retries=2, backoff=0.5)


@contextmanager
def probe_client() -> Iterator[PartnerClient]:
    """The client for health checks: one try, one second (shared, as above)."""
    yield _shared_client(timeout=1.0, retries=0, backoff=0.0)


def record_version(*, partner: PartnerModel, version: str, classes: list[str] | None = None) -> PartnerModelVersion:
    """The row of the partner version the model server named, created the first time it is seen."""
    # A version registered here (games/services/partners.py) is found by its name; any other the
    # server serves (loaded by hand) is kept as unregistered, so its guesses still say who made them.
    unregistered = {"checkpoint": "", "classes": classes or [], "status": PartnerModelVersion.Status.UNREGISTERED}
    row, _ = PartnerModelVersion.objects.get_or_create(partner=partner, version=version, defaults=unregistered)
    return row


@contextmanager
def admin_client() -> Iterator[PartnerClient]:
    """A client for the model server's repository endpoints (load, activate), with the admin token.

    Loading a checkpoint reads and builds a network, which takes seconds: a long timeout, no retry
    (a load that timed out may still finish; the caller checks the server's answer instead).
    """
    client = PartnerClient(settings.MODEL_SERVER_URL, timeout=120.0, retries=0,
                           admin_token=settings.MODEL_SERVER_ADMIN_TOKEN)  # fmt: skip
    try:
        yield client
    finally:
        client.close()


def forget_classes(name: str) -> None:
    """Drop the cached class list of a partner (a new version went live in this process)."""
    _classes.pop((settings.MODEL_SERVER_URL, name), None)


CLASSES_TTL_S = 60.0  # a newly activated partner version is picked up within a minute
_classes: dict[tuple[str, str], tuple[float, list[str]]] = {}


def partner_classes(name: str) -> list[str]:
    """The class names the partner model `name` answers with, from the model server (cached briefly).

    Raises model_server.client.PartnerError when the model server cannot tell.
    """
    key = (settings.MODEL_SERVER_URL, name)
    cached = _classes.get(key)
    if cached is not None and time.monotonic() - cached[0] < CLASSES_TTL_S:
        return cached[1]
    with live_client() as client:
        classes = list(client.metadata(name)["classes"])
    _classes[key] = (time.monotonic(), classes)
    return classes


# How many more maps before the experiment's partner evolves: the evolution app's to say (it counts
# maps, which games cannot see), registered by EvolutionConfig.ready() as maps registers the consensus.
_maps_until_next: Callable[[Experiment], int | None] | None = None


def set_evolution_provider(provider: Callable[[Experiment], int | None] | None) -> None:
    """Register the function that says how many new maps remain before an experiment's next generation."""
    global _maps_until_next
    _maps_until_next = provider


def evolution_status(experiment: Experiment) -> dict[str, int | None]:
    """What the game page shows: the live partner's generation and the maps left before the next one."""
    live = PartnerModelVersion.objects.filter(partner_id=experiment.partner_id, is_active=True).first()
    until = _maps_until_next(experiment) if _maps_until_next is not None and experiment.evolve_every_maps else None
    return {"generation": live.generation if live is not None else None, "maps_until_next": until}
