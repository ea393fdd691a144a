"""The OpenAPI schema documents every answer the researcher API gives, and the API gives no other."""

from __future__ import annotations

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from maps.tests.world import make_world, token_client
from maps.urls import api_urlpatterns

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator(patterns=api_urlpatterns).get_schema(public=True)


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_operation_documents_its_error_answers(schema: dict) -> None:
    for path, method, operation in operations(schema):
        codes = set(operation["responses"])
        assert {"401", "404", "503"} <= codes, (method, path)
        if method == "post":
            assert {"400", "403", "413", "415", "429"} <= codes, (method, path)
            assert set(operation["requestBody"]["content"]) == {"application/json"}  # no form bodies
        for code, answer in operation["responses"].items():
            if code >= "400":
                assert set(answer["content"]) == {"application/json"}, (method, path, code)


def test_429_documents_retry_after_and_the_quota_body(schema: dict) -> None:
    answer = schema["paths"]["/api/researcher/experiments/{slug}/exports/"]["post"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["required"] is True
    body = schema["components"]["schemas"]["ExportQuotaError"]
    assert set(body["properties"]) == {"detail", "retry_after", "quota"}


def test_the_schema_offers_only_the_formats_the_api_accepts(schema: dict) -> None:
    offered = schema["components"]["schemas"]["FormatsEnum"]["enum"]
    assert "manifest" not in offered
    world = make_world(participants=1)
    url = f"/api/researcher/experiments/{world.experiment.slug}/exports/"
    client = token_client(world.owner)
    assert client.post(url, {"formats": ["manifest"]}, format="json").status_code == 400


def test_path_parameters_say_what_the_routes_match(schema: dict) -> None:
    parameters = {p["name"]: p["schema"] for _, _, op in operations(schema) for p in op.get("parameters", [])}
    assert parameters["slug"]["pattern"] == "^[-a-zA-Z0-9_]+$"
    assert parameters["export_id"]["minimum"] == 0
    assert parameters["page"] == {"type": "integer", "minimum": 1}


def test_an_unrouted_api_url_is_a_json_404_and_an_empty_page_number_too() -> None:
    world = make_world(participants=1)
    client = token_client(world.owner)
    assert client.get("/api/researcher/experiments/not a slug!/").json() == {"detail": "Not found."}
    assert client.get("/api/researcher/exports/-1/").status_code == 404
    assert Client().get("/api/rounds/not-a-uuid/").json() == {"error": "not found"}
    assert "<html" in Client().get("/no-such-page/").content.decode().lower()
    empty = client.get("/api/researcher/experiments/", {"page": ""})
    assert empty.status_code == 404 and "Invalid page" in empty.json()["detail"]
    assert client.get("/api/researcher/experiments/", {"page": "1"}).status_code == 200
