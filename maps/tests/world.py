"""A small world for the researcher API's tests: an owner's experiment with maps and an export, others around it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from games.models import Experiment, Image
from games.tests.factories import ExperimentFactory, ImageFactory, UserFactory
from maps.models import ClickMap, Export
from maps.services import build_click_map
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db

TRAIL = [(100 + step, 120) for step in range(0, 40, 4)]  # ten bubbles along a line


@dataclass
class World:
    """An experiment with one image, a ready map, and a finished export with one file."""

    owner: User
    experiment: Experiment
    image: Image
    click_map: ClickMap
    export: Export


def make_world(participants: int = 5) -> World:
    """Seed the experiment of `World` through the same models and services the game uses."""
    experiment = ExperimentFactory(owner=UserFactory())
    image = ImageFactory(image_set=experiment.image_set)
    for offset in range(participants):
        scored_round(experiment=experiment, image=image, clicks=[(x + offset, y) for x, y in TRAIL])
    click_map = build_click_map(experiment_id=experiment.pk, image_id=image.pk)
    directory = settings.EXPORT_ROOT / experiment.slug / "1"
    directory.mkdir(parents=True)
    (directory / "clicks.csv").write_bytes(b"round,participant\n")
    entry = {"name": "clicks.csv", "bytes": 18, "sha256": hashlib.sha256(b"round,participant\n").hexdigest()}
    export = Export.objects.create(
        experiment=experiment, created_by=experiment.owner, status=Export.Status.SUCCEEDED, formats=["clicks_csv"],
        files=[entry], directory=f"{experiment.slug}/1", progress=1.0, started_at=timezone.now(),
        finished_at=timezone.now(),
    )  # fmt: skip
    return World(experiment.owner, experiment, image, click_map, export)


def token_client(user: User) -> APIClient:
    """An API client that sends the user's token, as scripts do."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
