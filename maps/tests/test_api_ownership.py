"""Every researcher API endpoint checks ownership: another researcher gets 404, no credentials 401."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from games.identity import COOKIE, COOKIE_SALT
from games.models import Experiment, Image
from games.tests.factories import ExperimentFactory, ImageFactory, ParticipantFactory, UserFactory
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


ENDPOINTS = {
    "experiment": ("get", "maps:api-experiment", lambda w: [w.experiment.slug]),
    "images": ("get", "maps:api-images", lambda w: [w.experiment.slug]),
    "map.png": ("get", "maps:api-map-png", lambda w: [w.experiment.slug, w.image.pk]),
    "map.npy": ("get", "maps:api-map-npy", lambda w: [w.experiment.slug, w.image.pk]),
    "rounds": ("get", "maps:api-rounds", lambda w: [w.experiment.slug]),
    "exports": ("get", "maps:api-exports", lambda w: [w.experiment.slug]),
    "export create": ("post", "maps:api-exports", lambda w: [w.experiment.slug]),
    "reliability": ("get", "maps:api-reliability", lambda w: [w.experiment.slug]),
    "export": ("get", "maps:api-export", lambda w: [w.export.pk]),
    "export file": ("get", "maps:api-export-file", lambda w: [w.export.pk, "clicks.csv"]),
}


def call(client: APIClient, world: World, endpoint: str) -> int:
    method, name, args = ENDPOINTS[endpoint]
    response = getattr(client, method)(reverse(name, args=args(world)), {"formats": ["clicks_csv"]} if method == "post"
                                       else None, format="json" if method == "post" else None)  # fmt: skip
    return response.status_code


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_it_serves_the_owner(world: World, endpoint: str) -> None:
    assert call(token_client(world.owner), world, endpoint) in (200, 202)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_it_serves_researchers_added_to_the_experiment(world: World, endpoint: str) -> None:
    colleague = UserFactory()
    world.experiment.researchers.add(colleague)
    assert call(token_client(colleague), world, endpoint) in (200, 202)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_it_validates_ownership(world: World, endpoint: str) -> None:
    assert call(token_client(UserFactory()), world, endpoint) == 404


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_it_requires_credentials(world: World, endpoint: str) -> None:
    assert call(APIClient(), world, endpoint) == 401


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_participant_sees_none_of_it(world: World, endpoint: str) -> None:
    client = APIClient()
    # The game's signed cookie, as `games.identity.remember` sets it.
    client.cookies[COOKIE] = signing.get_cookie_signer(salt=COOKIE + COOKIE_SALT).sign(str(ParticipantFactory().pk))
    assert call(client, world, endpoint) == 401


def test_the_list_shows_only_the_researchers_experiments(world: World) -> None:
    ExperimentFactory()  # somebody else's
    response = token_client(world.owner).get(reverse("maps:api-experiments"))
    assert [row["slug"] for row in response.json()["results"]] == [world.experiment.slug]
    assert token_client(UserFactory()).get(reverse("maps:api-experiments")).json()["results"] == []
    assert APIClient().get(reverse("maps:api-experiments")).status_code == 401


def test_a_logged_in_player_account_sees_no_experiment(world: World) -> None:
    player = UserFactory()
    ParticipantFactory(user=player, source="account")
    client = APIClient()
    client.force_login(player)
    assert client.get(reverse("maps:api-experiments")).json()["results"] == []
    assert call(client, world, "experiment") == 404
