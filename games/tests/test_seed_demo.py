"""`seed_demo` builds the demo experiment once, and staff can see its images in the admin."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from games.models import Experiment, Image
from model_server import demo_data

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--per-class", "2", "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_live_demo_experiment_with_masked_images() -> None:
    assert "20 images imported" in seed()
    experiment = Experiment.objects.get(slug="demo")
    assert experiment.status == Experiment.Status.LIVE and experiment.top_k == 1
    images = Image.objects.filter(image_set=experiment.image_set)
    assert images.count() == 2 * len(demo_data.CLASSES)
    assert {image.category.name for image in images} == set(demo_data.CLASSES)
    assert all(image.mask for image in images)


def test_every_tenth_image_of_a_class_is_a_catch_trial_served_in_each_half_of_a_session() -> None:
    call_command("seed_demo", "--per-class", "20", "--no-progress", stdout=io.StringIO())
    experiment = Experiment.objects.get(slug="demo")
    catch = Image.objects.filter(image_set=experiment.image_set, is_catch_trial=True)
    assert catch.count() == 2 * len(demo_data.CLASSES)
    assert {image.category.name for image in catch} == set(demo_data.CLASSES)
    assert experiment.catch_trial_rate == 0.2 and experiment.rounds_per_session == 10


def test_running_it_again_changes_nothing() -> None:
    seed()
    assert "0 images imported, 20 already present" in seed()
    assert Image.objects.count() == 20 and Experiment.objects.count() == 1


def test_demo_images_are_visible_in_the_admin(client) -> None:
    seed("--admin-password", "long-enough-password")
    assert client.login(username="admin", password="long-enough-password")
    listing = client.get("/admin/games/image/")
    assert listing.status_code == 200
    image = Image.objects.first()
    assert image.name in listing.content.decode()
    crop = client.get(image.get_absolute_url())
    assert crop.status_code == 200 and crop["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(b"".join(crop.streaming_content))).size == (256, 256)


def test_image_files_are_for_staff_only(client) -> None:
    seed()
    response = client.get(Image.objects.first().get_absolute_url())
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
