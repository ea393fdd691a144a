"""The maps app's tables refuse inconsistent rows."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from games.tests.factories import ExperimentFactory, ImageFactory, UserFactory
from maps.models import ClickMap, Export

pytestmark = pytest.mark.django_db


def test_an_image_has_one_map_per_experiment() -> None:
    experiment, image = ExperimentFactory(), ImageFactory()
    ClickMap.objects.create(experiment=experiment, image=image, parameters={})
    with pytest.raises(IntegrityError), transaction.atomic():
        ClickMap.objects.create(experiment=experiment, image=image, parameters={})


def test_a_map_cannot_have_more_participants_than_rounds() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        ClickMap.objects.create(
            experiment=ExperimentFactory(), image=ImageFactory(), parameters={}, participant_count=3, round_count=2
        )


def test_an_export_records_why_it_failed_and_when_it_finished() -> None:
    experiment, user = ExperimentFactory(), UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Export.objects.create(experiment=experiment, created_by=user, status=Export.Status.FAILED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Export.objects.create(experiment=experiment, created_by=user, status=Export.Status.SUCCEEDED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Export.objects.create(experiment=experiment, created_by=user, progress=1.5)
    Export.objects.create(
        experiment=experiment, created_by=user, status=Export.Status.SUCCEEDED, finished_at=timezone.now(), progress=1
    )
