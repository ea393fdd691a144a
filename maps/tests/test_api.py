"""The researcher API's answers: shapes, map files, pseudonymity, exports end to end, reliability."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage

from games.tests.factories import ImageFactory
from maps.models import Export
from maps.services import build_click_map, compute_reliability, heatmap_array
from maps.tests.export_data import ADDRESS_HASH, PANEL_ID, USER_AGENT, play_experiment
from maps.tests.factories import scored_round
from maps.tests.world import TRAIL, make_world, token_client

pytestmark = pytest.mark.django_db


def test_it_lists_images_with_the_state_of_their_map() -> None:
    world = make_world()
    collecting = ImageFactory(image_set=world.experiment.image_set)
    scored_round(experiment=world.experiment, image=collecting, clicks=TRAIL)
    build_click_map(experiment_id=world.experiment.pk, image_id=collecting.pk)
    ImageFactory(image_set=world.experiment.image_set)  # never played
    response = token_client(world.owner).get(reverse("maps:api-images", args=[world.experiment.slug]))
    rows = response.json()["results"]
    assert [row["map_status"] for row in rows] == ["ready", "collecting", "none"]
    assert rows[0]["map"]["participant_count"] == 5
    assert rows[0]["map"]["png_url"] == reverse("maps:api-map-png", args=[world.experiment.slug, world.image.pk])
    assert rows[2]["map"] is None


def test_it_serves_the_map_as_png_and_npy() -> None:
    world = make_world()
    client = token_client(world.owner)
    png = client.get(reverse("maps:api-map-png", args=[world.experiment.slug, world.image.pk]), HTTP_ACCEPT="image/png")
    assert png["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(png.content)).size == (256, 256)
    npy = client.get(reverse("maps:api-map-npy", args=[world.experiment.slug, world.image.pk]))
    array = np.load(io.BytesIO(npy.content), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (256, 256)
    np.testing.assert_array_equal(array, heatmap_array(world.click_map))


def test_a_map_is_not_served_before_it_has_enough_participants() -> None:
    world = make_world(participants=2)
    client = token_client(world.owner)
    for name in ("maps:api-map-png", "maps:api-map-npy"):
        response = client.get(reverse(name, args=[world.experiment.slug, world.image.pk]), HTTP_ACCEPT="image/png")
        assert response.status_code == 404
        assert response.json() == {"detail": "this image's map is not ready yet"}


def test_rounds_are_pseudonymous() -> None:
    played = play_experiment()
    response = token_client(played.experiment.owner).get(reverse("maps:api-rounds", args=[played.experiment.slug]))
    body = response.content.decode()
    assert response.json()["count"] == played.all_rounds
    for secret in (PANEL_ID, ADDRESS_HASH, USER_AGENT):
        assert secret not in body
    row = response.json()["results"][0]
    assert row["participant"] == played.sessions[0].participant.username
    assert row["partner_version"] == str(played.version)
    assert {row["invalidated"] for row in response.json()["results"]} == {True, False}


def test_it_pages_long_lists() -> None:
    world = make_world(participants=1)
    for _ in range(55):
        scored_round(experiment=world.experiment, image=world.image, clicks=TRAIL[:2])
    page = token_client(world.owner).get(reverse("maps:api-rounds", args=[world.experiment.slug])).json()
    assert (page["count"], len(page["results"])) == (56, 50)
    assert page["next"].endswith("?page=2")


@pytest.mark.usefixtures("eager_tasks")
def test_it_runs_an_export_that_can_be_polled_and_downloaded(django_capture_on_commit_callbacks) -> None:
    played = play_experiment()
    client = token_client(played.experiment.owner)
    request = {"formats": ["clicks_csv", "maps_npz"], "filters": {"quality": "all"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("maps:api-exports", args=[played.experiment.slug]), request, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == Export.Status.PENDING
    polled = client.get(response.json()["url"]).json()
    assert polled["status"] == Export.Status.SUCCEEDED, polled["error"]
    assert {entry["name"] for entry in polled["files"]} == {"clicks.csv", "maps.npz", "maps_index.csv", "manifest.json"}
    for entry in polled["files"]:
        download = client.get(entry["url"])
        assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == entry["sha256"]
    listed = client.get(reverse("maps:api-exports", args=[played.experiment.slug])).json()
    assert [row["id"] for row in listed["results"]] == [polled["id"]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"formats": ["pdf"]}, "is not a valid choice"),
        ({"formats": ["manifest"]}, '"manifest" is not a valid choice'),  # always written, never named
        ({"formats": ["clicks_csv"], "filters": {"from": "yesterday"}}, "must be a date (YYYY-MM-DD) or an ISO"),
        ({"formats": ["clicks_csv"], "filters": {"from": "2024-03-02", "to": "2024-03-01"}}, "must come before"),
        ({"formats": []}, "Ensure this field has at least 1 elements."),
    ],
)
def test_it_explains_what_is_wrong_with_an_export_request(payload: dict, message: str) -> None:
    world = make_world(participants=1)
    response = token_client(world.owner).post(reverse("maps:api-exports", args=[world.experiment.slug]), payload,
                                              format="json")  # fmt: skip
    assert response.status_code == 400
    assert message in str(response.json())
    assert not Export.objects.exclude(pk=world.export.pk).exists()


def test_it_reports_reliability_overall_and_per_image() -> None:
    played = play_experiment()
    client = token_client(played.experiment.owner)
    url = reverse("maps:api-reliability", args=[played.experiment.slug])
    assert client.get(url).json()["report"] is None
    report = compute_reliability(experiment_id=played.experiment.pk, iterations=5)
    body = client.get(url).json()
    assert body["report"]["ceiling_spearman"] == pytest.approx(report.ceiling_spearman)
    assert body["report"]["image_count"] == 2
    assert [row["image_name"] for row in body["images"]] == [image.name for image in played.images]
    assert all(row["split_half_spearman"] is not None for row in body["images"])


def test_the_schema_describes_the_researcher_api_only(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["info"]["title"] == "ClickMe researcher API"
    assert all(path.startswith("/api/researcher/") for path in schema["paths"])
    assert len(schema["paths"]) == 10
