"""`/images/<id>.png` (the admin's crops) is served only to those who may see an experiment showing the image."""

from __future__ import annotations

import pytest
from django.urls import reverse

from games.models import Experiment, Image
from games.tests.factories import ExperimentFactory, ImageFactory, ImageSetFactory, UserFactory
from games.tests.moderation_data import staff_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def image() -> Image:
    experiment = ExperimentFactory(owner=UserFactory(username="olga", is_staff=True))
    return ImageFactory(image_set=experiment.image_set)


def crop_status(client, user, image: Image) -> int:
    client.force_login(user)
    return client.get(reverse("games:image", args=[image.pk])).status_code


def test_the_owner_of_the_experiment_gets_the_crop(client, image: Image) -> None:
    client.force_login(Experiment.objects.get().owner)
    response = client.get(reverse("games:image", args=[image.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_a_researcher_added_to_the_experiment_gets_it_too(client, image: Image) -> None:
    colleague = UserFactory(username="carl", is_staff=True)
    Experiment.objects.get().researchers.add(colleague)
    assert crop_status(client, colleague, image) == 200


def test_another_staff_user_gets_404_as_if_there_were_no_such_image(client, image: Image) -> None:
    stranger = UserFactory(username="sam", is_staff=True)
    ExperimentFactory(owner=stranger)  # their own study, with other images
    assert crop_status(client, stranger, image) == 404
    assert crop_status(client, stranger, ImageFactory()) == 404  # an image in no experiment at all


def test_the_uploader_of_the_set_and_moderators_and_superusers_get_it(client, image: Image) -> None:
    uploader = UserFactory(username="ursula")
    own = ImageFactory(image_set=ImageSetFactory(owner=uploader))
    assert crop_status(client, uploader, own) == 200
    assert crop_status(client, uploader, image) == 404
    assert crop_status(client, staff_in("moderators", "mona"), image) == 200
    assert crop_status(client, UserFactory(username="root", is_superuser=True, is_staff=True), image) == 200


def test_without_signing_in_the_crop_sends_to_the_admin_login(client, image: Image) -> None:
    response = client.get(reverse("games:image", args=[image.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
