"""factory_boy factories for the games app's models."""

from __future__ import annotations

import hashlib
import uuid

import factory
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from games.imaging import png_bytes
from games.models import (
    Category,
    Experiment,
    Image,
    ImageSet,
    Participant,
    PartnerModel,
    PartnerModelVersion,
    PlaySession,
    Round,
)


def png_file(size: int = 256, colour: tuple[int, int, int] = (120, 80, 40)) -> ContentFile:
    """A solid-colour PNG as an uploaded file."""
    return ContentFile(png_bytes(PILImage.new("RGB", (size, size), colour)), name="crop.png")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "auth.User"
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"researcher{n}")


class ImageSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageSet
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"set-{n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"class{n}")


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    image_set = factory.SubFactory(ImageSetFactory)
    category = factory.SubFactory(CategoryFactory)
    name = factory.Sequence(lambda n: f"image_{n:04d}")
    checksum = factory.LazyAttribute(lambda image: hashlib.sha256(image.name.encode()).hexdigest())
    crop = factory.LazyFunction(png_file)
    original = factory.LazyFunction(png_file)
    original_width = 256
    original_height = 256


class PartnerModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PartnerModel
        django_get_or_create = ["name"]

    name = "partner"


class PartnerModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PartnerModelVersion

    partner = factory.SubFactory(PartnerModelFactory)
    version = factory.Sequence(lambda n: f"v{n}")
    checkpoint = "checkpoints/partner.pt"
    is_active = False
    # The active version is the live one (the constraint partner_live_is_active).
    status = factory.LazyAttribute(lambda row: "live" if row.is_active else "candidate")


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    slug = factory.Sequence(lambda n: f"experiment-{n}")
    title = "An experiment"
    owner = factory.SubFactory(UserFactory)
    image_set = factory.SubFactory(ImageSetFactory)
    partner = factory.SubFactory(PartnerModelFactory)
    status = Experiment.Status.LIVE


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participant

    username = factory.Sequence(lambda n: f"curious-otter-{n}")


class PlaySessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlaySession

    participant = factory.SubFactory(ParticipantFactory)
    experiment = factory.SubFactory(ExperimentFactory)


class RoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Round

    session = factory.SubFactory(PlaySessionFactory)
    participant = factory.LazyAttribute(lambda r: r.session.participant)
    experiment = factory.LazyAttribute(lambda r: r.session.experiment)
    image = factory.SubFactory(ImageFactory, image_set=factory.SelfAttribute("..experiment.image_set"))
    client_round_id = factory.LazyFunction(uuid.uuid4)
    position = factory.LazyAttribute(lambda r: r.session.rounds.count())
    settings = factory.LazyAttribute(lambda r: r.experiment.game_settings())
