"""Both JSON APIs validate at the edge: JSON types exactly, shallow bodies, JSON only; 400s name the field."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from games.api_input import MAX_DEPTH, nesting_depth
from games.models import Click, PlaySession, Round
from games.tests.visits import api, enter, start_session, study
from maps.models import Export
from maps.tests.world import make_world, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


@pytest.fixture
def player() -> tuple[Client, str]:
    """A consented participant with a round open: (client, round id)."""
    client = Client()
    experiment = study()
    enter(client, experiment)
    session_id = start_session(client, experiment)
    round_id = str(uuid.uuid4())
    assert api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": round_id}).status_code == 201
    return client, round_id


@pytest.mark.parametrize(
    ("bubble", "message"),
    [
        (["5", 10, 0], "x must be an integer, not a string ('5')"),
        ([10, "5", 0], "y must be an integer, not a string ('5')"),
        ([10, 10, 0.0], "t_ms must be an integer, not a number"),
        ([10.0, 10, 0], "x must be an integer, not a number"),
        ([True, 10, 0], "x must be an integer, not a boolean"),
        ([10, None, 0], "y must be an integer, not null"),
    ],
)
def test_a_coordinate_of_the_wrong_json_type_is_a_400_naming_it(player, bubble: list, message: str) -> None:
    client, round_id = player
    answer = api(client, f"/api/rounds/{round_id}/clicks/", {"start_seq": 0, "clicks": [[10, 10, 0], bubble]})
    assert answer.status_code == 400
    assert answer.json()["error"] == f"clicks: 1: {message}"
    assert not Click.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("clicks/", {"start_seq": "0", "clicks": [[1, 1, 0]]}, "start_seq: must be an integer, not a string ('0')"),
        ("guess/", {"bubble_count": True}, "bubble_count: must be an integer, not a boolean"),
        ("guess/", {"bubble_count": 10.0}, "bubble_count: must be an integer, not a number"),
        ("submit/", {"outcome": "skipped", "bubble_count": "0"}, "bubble_count: must be an integer"),
        ("submit/", {"outcome": 1, "bubble_count": 0}, "outcome: must be a string, not a number"),
    ],
)
def test_counts_and_choices_take_only_their_json_type(player, path: str, body: dict, message: str) -> None:
    client, round_id = player
    answer = api(client, f"/api/rounds/{round_id}/{path}", body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message)
    assert Round.objects.get().status == Round.Status.PLAYING


def test_session_fields_and_round_ids_take_only_their_json_type() -> None:
    client = Client()
    experiment = study()
    enter(client, experiment)
    url = f"/api/play/{experiment.slug}/sessions/"
    assert api(client, url, {"device_pixel_ratio": True}).json()["error"] == (
        "device_pixel_ratio: must be a number, not a boolean"
    )
    assert api(client, url, {"canvas_width": "512"}).status_code == 400
    assert not PlaySession.objects.exists()
    session_id = start_session(client, experiment)
    as_number = api(client, "/api/rounds/", {"session_id": session_id, "client_round_id": uuid.uuid4().int})
    assert as_number.json()["error"] == "client_round_id: must be a UUID string, not a number"
    as_string = api(client, "/api/rounds/", {"session_id": str(session_id), "client_round_id": str(uuid.uuid4())})
    assert as_string.status_code == 400 and as_string.json()["error"].startswith("session_id: must be an integer")
    assert not Round.objects.exists()


def deep(levels: int) -> bytes:
    return b'{"clicks": ' + b"[" * levels + b"]" * levels + b"}"


def test_deeply_nested_json_is_a_400_on_the_game_api_never_a_500(player) -> None:
    client, round_id = player
    url = f"/api/rounds/{round_id}/clicks/"
    # With the outer object: one level past the limit, and far past Python's recursion limit.
    for levels in (MAX_DEPTH, 20_000):
        answer = client.post(url, deep(levels), content_type="application/json")
        assert answer.status_code == 400
        assert answer.json()["error"] == f"JSON nested {levels + 1} levels deep; at most {MAX_DEPTH} are accepted"
    at_the_limit = client.post(url, deep(MAX_DEPTH - 1), content_type="application/json")
    assert at_the_limit.status_code == 400 and "nested" not in at_the_limit.json()["error"]  # parsed, then validated
    nan = client.post(f"/api/rounds/{round_id}/guess/", b'{"bubble_count": NaN}', content_type="application/json")
    assert nan.status_code == 400 and "NaN is not a JSON number" in nan.json()["error"]


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert nesting_depth(b'{"a": "[[[[[[[[[[[[", "b": ["\\"]]]]"]}') == 2


def test_the_researcher_api_refuses_deep_json_wrong_types_and_form_bodies() -> None:
    world = make_world(participants=1)
    client = token_client(world.owner)
    url = reverse("maps:api-exports", args=[world.experiment.slug])
    nested = client.generic("POST", url, b'{"formats": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                            content_type="application/json")  # fmt: skip
    assert nested.status_code == 400 and "at most" in nested.json()["detail"]
    wrong = client.post(url, {"formats": ["clicks_csv"], "since_last": "yes", "filters": {"from": 20240301}},
                        format="json")  # fmt: skip
    assert wrong.status_code == 400
    assert wrong.json() == {"since_last": ["must be true or false, not a string ('yes')"],
                            "filters": {"from": ["must be a string, not a number"]}}  # fmt: skip
    # A form body cannot carry the filters object: refused, never exported with them silently dropped.
    form = client.post(url, {"formats": "clicks_csv", "filters[from]": "2024-03-01"}, format="multipart")
    assert form.status_code == 415
    encoded = client.generic("POST", url, "formats=clicks_csv&from=2024-03-01",
                             content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert encoded.status_code == 415 and "application/x-www-form-urlencoded" in encoded.json()["detail"]
    assert not Export.objects.exclude(pk=world.export.pk).exists()


def test_a_json_body_over_the_size_limit_is_a_413(settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    world = make_world(participants=1)
    url = reverse("maps:api-exports", args=[world.experiment.slug])
    body = json.dumps({"formats": ["clicks_csv"], "filters": {"from": "x" * 2000}})
    answer = token_client(world.owner).generic("POST", url, body, content_type="application/json")
    assert answer.status_code == 413 and "larger than 1024 bytes" in answer.json()["detail"]
