"""`manage.py seed_demo`: the procedural demo image set and a live demo experiment (idempotent)."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from PIL import Image as PILImage
from tqdm import tqdm

from games.imaging import png_bytes
from games.models import Experiment, ImageSet, PartnerModel
from games.services.imports import import_image
from model_server import demo_data
from model_server.demo_data import DEMO_PARTNER

DEMO_SET = "demo"
# Played images come from the "test" split: the demo partner never saw them in training.
DEMO_SPLIT, DEMO_SEED = "test", 2018
# Every tenth image of a class is a catch trial (its mask is exact: the shape was drawn from it),
# served twice per 10-round session, once in each half (games.services.sampling.catch_rounds).
CATCH_EVERY, DEMO_CATCH_TRIAL_RATE = 10, 0.2


class Command(BaseCommand):
    help = "Create (or complete) the demo image set, its partner model and a live demo experiment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--per-class", type=int, default=10, help="Images per class (default 10).")
        parser.add_argument(
            "--admin-password",
            help="Also create or update the superuser 'admin' with this password (development only).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(
        self, *args: object, per_class: int, admin_password: str | None, no_progress: bool, **options: object
    ) -> None:
        if per_class < 1:
            raise CommandError("--per-class must be at least 1")
        owner = self.ensure_owner(admin_password)
        image_set, _ = ImageSet.objects.get_or_create(
            name=DEMO_SET, defaults={"description": "Procedural shapes on clutter, with object masks."}
        )
        samples = demo_data.generate(n_per_class=per_class, seed=DEMO_SEED, split=DEMO_SPLIT)
        totals: Counter[str] = Counter()
        total = per_class * len(demo_data.CLASSES)
        progress = tqdm(samples, total=total, desc="demo images", unit="image", disable=no_progress)
        for number, sample in enumerate(progress):
            mask = PILImage.fromarray(sample.mask.astype("uint8") * 255, mode="L")
            outcome = import_image(
                image_set=image_set,
                category_name=sample.class_name,
                name=sample.name,
                data=png_bytes(sample.image),
                mask_data=png_bytes(mask),
                # Samples come class by class; the 10th, 20th... of a class, so small demos have none.
                is_catch_trial=(number // len(demo_data.CLASSES)) % CATCH_EVERY == CATCH_EVERY - 1,
            )
            totals[outcome.status] += 1
            if outcome.status == "rejected":
                raise CommandError(f"demo image {sample.name} was rejected: {outcome.reason}")
        experiment = self.ensure_experiment(owner, image_set)
        self.stdout.write(
            f"demo: {totals['imported']} images imported, {totals['duplicate']} already present "
            f"({image_set.images.filter(is_catch_trial=True).count()} catch trials); "
            f"experiment '{experiment.slug}' is {experiment.status}"
        )

    def ensure_owner(self, admin_password: str | None) -> object:
        """The demo experiment's owner: 'admin' when a password is given, else a 'demo' user."""
        user_model = get_user_model()
        if admin_password is None:
            owner, created = user_model.objects.get_or_create(username="demo")
            if created:
                owner.set_unusable_password()
                owner.save()
            return owner
        if not settings.DEBUG and len(admin_password) < 12:
            raise CommandError("with DEBUG off, --admin-password must be at least 12 characters")
        admin, _ = user_model.objects.get_or_create(username="admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        return admin

    @transaction.atomic
    def ensure_experiment(self, owner: object, image_set: ImageSet) -> Experiment:
        """Create the demo experiment once; later runs leave a researcher's edits alone."""
        partner, _ = PartnerModel.objects.get_or_create(
            name=DEMO_PARTNER, defaults={"description": "Small GALA-ResNet trained on the demo set."}
        )
        experiment, _ = Experiment.objects.get_or_create(
            slug="demo",
            defaults={
                "title": "ClickMe demo: shapes on clutter",
                "description": "Reveal the shape so the network can name it.",
                "status": Experiment.Status.LIVE,
                "owner": owner,
                "image_set": image_set,
                "partner": partner,
                "top_k": 1,  # 10 classes: go-live refuses a top-k above a fifth of them
                "rounds_per_session": 10,
                "catch_trial_rate": DEMO_CATCH_TRIAL_RATE,
                "consent_text": DEMO_CONSENT,
            },
        )
        return experiment


DEMO_CONSENT = (
    "This is a research game. You will reveal parts of images so that a computer program can "
    "recognise them. We store where and when you clicked, your score and a random username; we do "
    "not store your name or address. You may stop at any time. You must be 18 or older to play."
)
