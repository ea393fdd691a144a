"""Fixtures for playing over real HTTP: a live site, a real partner server, eager or real tasks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from devtools.partner_process import DEMO_CHECKPOINT, serve_partner, wait_until_ready
from games.models import Experiment
from games.tests.browser import browser  # noqa: F401 (a fixture, for every browser test of the app)
from games.tests.http_player import HttpPlayer
from model_server.demo_data import DEMO_PARTNER


@pytest.fixture(scope="session")
def partner_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GALA checkpoint over the demo classes (random weights: these tests check plumbing)."""
    import torch

    from model_server import demo_data
    from model_server.config import preset
    from model_server.network import gala_small, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("partner") / "partner.pt"
    save_checkpoint(path, gala_small(), preset("gala_small"), classes=list(demo_data.CLASSES), version="test-1")
    return path


@pytest.fixture
def partner(settings, partner_checkpoint: Path) -> Iterator[object]:
    """A real model server on loopback serving the site's media; settings point the site at it."""
    yield from _serve(settings, partner_checkpoint)


@pytest.fixture
def demo_partner(settings) -> Iterator[object]:
    """The same, serving the shipped demo partner: rounds end as in the game, when the shape is revealed
    (a random-weight partner names the right class at one query in ten, ending rounds at random)."""
    yield from _serve(settings, DEMO_CHECKPOINT)


def _serve(settings, checkpoint: Path) -> Iterator[object]:
    from model_server.serve import ServerSettings
    from model_server.tests.serving import run_server

    server_settings = ServerSettings(
        checkpoint=checkpoint, name=DEMO_PARTNER, image_root=Path(settings.MEDIA_ROOT), max_delay_ms=1
    )
    with run_server(server_settings) as server:
        settings.MODEL_SERVER_URL = server.url
        yield server


@pytest.fixture
def partner_process(request: pytest.FixtureRequest, settings, demo: Experiment, tmp_path: Path) -> Iterator[str]:
    """`python -m model_server.serve` in its own process, over the site's media; the site points at it.

    Serves the trained demo checkpoint once it has been built, else an untrained one over the
    demo classes (the plumbing under test is the same).
    """
    checkpoint = DEMO_CHECKPOINT if DEMO_CHECKPOINT.exists() else request.getfixturevalue("partner_checkpoint")
    log_path = tmp_path / "partner.log"
    with serve_partner(checkpoint=checkpoint, name=demo.partner.name, image_root=Path(settings.MEDIA_ROOT),
                       log_path=log_path, workers=1, max_delay_ms=1, device="cpu") as partner:  # fmt: skip
        wait_until_ready(partner)
        settings.MODEL_SERVER_URL = partner.url
        yield partner.url


@pytest.fixture
def demo(transactional_db: None) -> Experiment:
    """The demo experiment with one image per class, two rounds per session."""
    call_command("seed_demo", "--per-class", "1", "--no-progress", stdout=io.StringIO())
    experiment = Experiment.objects.get(slug="demo")
    experiment.rounds_per_session = 2
    experiment.save()
    return experiment


@pytest.fixture
def new_player(live_server, demo: Experiment) -> Iterator[object]:
    """Make participants who have consented and opened a session, talking HTTP to the live site."""
    players: list[HttpPlayer] = []

    def make() -> HttpPlayer:
        player = HttpPlayer(live_server.url, demo.slug)
        player.consent()
        player.start_session()
        players.append(player)
        return player

    yield make
    for player in players:
        player.close()
