"""Every researcher API endpoint checks ownership: another researcher gets 404, no credentials 401."""

from __future__ import annotations

import pytest
from django.core import signing
from django.urls import reverse
from rest_framework.test import APIClient

from games.identity import COOKIE, COOKIE_SALT
from games.tests.factories import ExperimentFactory, ParticipantFactory, UserFactory
from maps.tests.world import World, make_world, token_client

pytestmark = pytest.mark.django_db

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
