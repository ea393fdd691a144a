"""What is played: image sets, categories, images, partner models and experiments."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from model_server.canvas import IMAGE_SIZE  # the game's 256 x 256 coordinate space


class ImageSet(models.Model):
    """A named collection of images that one or more experiments draw from."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="image_sets",
        help_text="The researcher who uploaded it; empty for sets made by an administrator or a command.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    """An object class; its name is what the partner must recognise."""

    name = models.CharField(max_length=200, unique=True)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def _crop_path(image: Image, filename: str) -> str:
    # Named by checksum, never by class: a file name must not give the answer away.
    return f"images/crops/{image.checksum[:2]}/{image.checksum}.png"


def _original_path(image: Image, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"images/originals/{image.checksum[:2]}/{image.checksum}.{suffix}"


def _mask_path(image: Image, filename: str) -> str:
    return f"images/masks/{image.checksum[:2]}/{image.checksum}.png"


class ImageQuerySet(models.QuerySet):
    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> ImageQuerySet:
        """Images of an experiment the user may see (`Experiment.objects.visible_to`), or of a set they uploaded."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self.all()
        sets = Experiment.objects.visible_to(user).values("image_set_id")
        return self.filter(Q(image_set_id__in=sets) | Q(image_set__owner_id=user.pk))


class Image(models.Model):
    """One stimulus: the 256×256 centre crop players see, its original, and an optional mask."""

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        RETIRED = "retired", "retired (enough data)"
        REJECTED = "rejected", "rejected by a moderator"

    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="images")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="images")
    name = models.CharField(max_length=255, help_text="Unique within its image set.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the original file.")
    crop = models.ImageField(upload_to=_crop_path, width_field="crop_width", height_field="crop_height")
    crop_width = models.PositiveSmallIntegerField(default=IMAGE_SIZE)
    crop_height = models.PositiveSmallIntegerField(default=IMAGE_SIZE)
    original = models.FileField(upload_to=_original_path)
    original_width = models.PositiveIntegerField()
    original_height = models.PositiveIntegerField()
    mask = models.ImageField(upload_to=_mask_path, blank=True, help_text="Object mask (L, 0/255).")
    is_catch_trial = models.BooleanField(
        default=False, help_text="Shown for quality control: bubbles should fall on the mask."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    # Denormalised count of valid scored rounds, recomputed (never incremented) by the
    # services that change it: the sampler orders thousands of images by it on every round.
    valid_rounds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image_set", "name"], name="image_name_unique_in_set"),
            models.UniqueConstraint(fields=["image_set", "checksum"], name="image_checksum_unique_in_set"),
            models.CheckConstraint(
                condition=Q(crop_width=IMAGE_SIZE, crop_height=IMAGE_SIZE), name="image_crop_is_256"
            ),
            models.CheckConstraint(
                condition=Q(original_width__gt=0, original_height__gt=0), name="image_original_has_size"
            ),
            models.CheckConstraint(condition=~Q(is_catch_trial=True) | ~Q(mask=""), name="image_catch_trial_has_mask"),
        ]
        indexes = [
            # The sampler: active images of a set, fewest valid rounds first.
            models.Index(fields=["image_set", "state", "valid_rounds"], name="image_sampling_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.image_set}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("games:image", args=[self.pk])

    @property
    def is_playable(self) -> bool:
        """Whether the sampler may serve this image."""
        return self.state == self.State.ACTIVE


class PartnerModel(models.Model):
    """A named partner network served by the model server; its versions are checkpoints."""

    name = models.SlugField(max_length=100, unique=True, help_text="The model server's model name.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class PartnerModelVersion(models.Model):
    """One checkpoint of a partner: kept so every guess records which network made it, with its lineage.

    A version is registered (`games/services/partners.register_version`) as a candidate, goes live
    only through the promotion gate or a researcher's promotion, and is retired when another goes
    live (docs/evolution.md). `is_active` is the live one, as the model server answers with it.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "candidate"
        LIVE = "live", "live"
        RETIRED = "retired", "retired"
        FAILED = "failed", "failed (refused by the gate, or broken)"
        UNREGISTERED = "unregistered", "named by the model server, never registered"

    partner = models.ForeignKey(PartnerModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=100)
    checkpoint = models.CharField(max_length=500, help_text="Checkpoint path as the model server sees it.")
    architecture = models.CharField(max_length=100, blank=True)
    classes = models.JSONField(default=list, help_text="Class names in output order.")
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    # Lineage: what it learnt from. The export is maps' (games never imports maps), so its id is kept
    # as a number, with the dataset version that names its content.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    status_reason = models.TextField(blank=True, help_text="Why it has its status (the gate's decision, a reason).")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="The version it was fine-tuned from (train --init).",
    )  # fmt: skip
    generation = models.PositiveIntegerField(default=0, help_text="0 for a partner trained elsewhere; parent's + 1.")
    export_id = models.PositiveIntegerField(null=True, blank=True, help_text="The maps export it was trained on.")
    dataset_version = models.CharField(max_length=64, blank=True, help_text="That export's dataset version.")
    # Evaluation on an experiment's held-out images (model_server.evaluate); the whole result is in metrics.
    accuracy = models.FloatField(null=True, blank=True, help_text="Top-1 on whole held-out images.")
    accuracy_revealed = models.FloatField(
        null=True, blank=True, help_text="Top-1 with the game's reveal, mean over the bubble counts evaluated."
    )
    alignment = models.FloatField(null=True, blank=True, help_text="Spearman with the human maps / ceiling.")
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="partner_versions"
    )
    live_since = models.DateTimeField(null=True, blank=True, help_text="When it last went live.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "version"], name="partner_version_unique"),
            models.UniqueConstraint(fields=["partner"], condition=Q(is_active=True), name="partner_one_active_version"),
            models.CheckConstraint(
                condition=Q(is_active=True, status="live") | (Q(is_active=False) & ~Q(status="live")),
                name="partner_live_is_active",
            ),
            models.CheckConstraint(condition=~Q(parent=F("pk")), name="partner_version_not_own_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.partner}@{self.version}"


def _new_pilot_token() -> str:
    return secrets.token_urlsafe(24)


class ExperimentQuerySet(models.QuerySet):
    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> ExperimentQuerySet:
        """The experiments whose data a user may see: their own, those they were added to; a superuser all.

        The one rule of who sees a study's data (researcher API, dashboard, admin, image files).
        """
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self.all()
        # A subquery rather than a join on `researchers`, so no row comes back twice and no DISTINCT is needed.
        shared = Experiment.researchers.through.objects.filter(user_id=user.pk).values("experiment_id")
        return self.filter(Q(owner_id=user.pk) | Q(pk__in=shared))


class Experiment(models.Model):
    """A data-collection study: which images, which partner, the game rules and recruitment."""

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        LIVE = "live", "live"
        PAUSED = "paused", "paused"
        CLOSED = "closed", "closed"

    class Recruitment(models.TextChoices):
        OPEN = "open", "open (anonymous or account)"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon Mechanical Turk"
        SONA = "sona", "SONA Systems"

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_experiments")
    researchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="experiments",
        help_text="Other researchers who may see this experiment's data.",
    )
    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="experiments")
    partner = models.ForeignKey(PartnerModel, on_delete=models.PROTECT, related_name="experiments")

    # Game parameters (docs/running-a-study.md, "3. Create the study"); defaults reproduce the original ClickMe.ai.
    bubble_size = models.PositiveSmallIntegerField(default=21, help_text="Square bubble side, px.")
    bubble_interval_ms = models.PositiveSmallIntegerField(default=50)
    bubble_max_step = models.PositiveSmallIntegerField(default=7, help_text="Max px between bubbles.")
    query_every = models.PositiveSmallIntegerField(default=10, help_text="Bubbles between guesses.")
    time_limit_ms = models.PositiveIntegerField(default=7000)
    top_k = models.PositiveSmallIntegerField(default=5, help_text="Recognised = target in top-k.")
    noise_std = models.FloatField(default=0.4, help_text="Noise on unrevealed pixels, [0,1] units.")
    max_points = models.PositiveSmallIntegerField(default=100)
    rounds_per_session = models.PositiveSmallIntegerField(default=20)
    target_maps_per_image = models.PositiveSmallIntegerField(default=10)
    retire_on_plateau = models.BooleanField(default=False)
    plateau_tolerance = models.FloatField(default=0.01, help_text="Split-half gain under which to retire.")
    catch_trial_rate = models.FloatField(default=0.0, help_text="Fraction of rounds that are catch trials.")
    # Thresholds of the automatic quality rules (games/quality.py), by rule name; empty = defaults.
    quality_thresholds = models.JSONField(default=dict, blank=True)

    # When a round counts as recognised (docs/running-a-study.md, "Recognised"): the target in
    # the top-k *and* at least this probability; empty = automatic, 2 / number of partner classes.
    recognition_min_probability = models.FloatField(
        null=True, blank=True, help_text="Probability the target needs besides being in the top-k; empty = automatic."
    )
    skips_count_for_completion = models.BooleanField(
        default=True, help_text="Whether a skipped picture counts towards the rounds a participant must complete."
    )

    # The partner evolves (docs/evolution.md): a new generation every N new maps, through the promotion gate.
    evolve_every_maps = models.PositiveIntegerField(
        default=0, help_text="Co-train a new partner generation every this many new maps; 0: never."
    )
    promotion_accuracy_margin = models.FloatField(
        default=0.02, help_text="How much lower (0..1) a candidate's accuracy with the reveal may be than the live's."
    )
    promotion_alignment_margin = models.FloatField(
        default=0.0, help_text="How much lower a candidate's alignment may be than the live one's (0: not lower)."
    )
    evolve_train_args = models.JSONField(
        default=list, blank=True, help_text="Extra `model_server.train` flags for each generation, e.g. its arch."
    )

    # Consent and recruitment.
    consent_version = models.CharField(max_length=32, default="1")
    consent_text = models.TextField(blank=True)
    minimum_age = models.PositiveSmallIntegerField(default=18)
    recruitment = models.CharField(max_length=16, choices=Recruitment.choices, default=Recruitment.OPEN)
    completion_code = models.CharField(max_length=100, blank=True, help_text="Shown or sent on completion.")
    completion_url = models.URLField(
        blank=True, help_text="Prolific completion URL or SONA credit URL (may contain {code}, {sona_id})."
    )
    # The preview link's secret (`/play/<slug>/?pilot=<token>`): pilot data is marked and kept out of maps.
    pilot_token = models.CharField(max_length=64, default=_new_pilot_token, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(bubble_size__gte=1, bubble_size__lte=256), name="exp_bubble_size"),
            models.CheckConstraint(condition=Q(bubble_interval_ms__gte=1), name="exp_bubble_interval"),
            models.CheckConstraint(condition=Q(query_every__gte=1), name="exp_query_every"),
            models.CheckConstraint(condition=Q(time_limit_ms__gte=1000), name="exp_time_limit"),
            models.CheckConstraint(condition=Q(top_k__gte=1), name="exp_top_k"),
            models.CheckConstraint(condition=Q(noise_std__gte=0), name="exp_noise_std"),
            models.CheckConstraint(condition=Q(rounds_per_session__gte=1), name="exp_rounds_per_session"),
            models.CheckConstraint(condition=Q(target_maps_per_image__gte=1), name="exp_target_maps"),
            models.CheckConstraint(
                condition=Q(catch_trial_rate__gte=0, catch_trial_rate__lte=1), name="exp_catch_trial_rate"
            ),
            models.CheckConstraint(
                condition=Q(recruitment="open") | ~Q(completion_code=""), name="exp_panel_has_completion_code"
            ),
            models.CheckConstraint(
                condition=Q(recognition_min_probability__isnull=True)
                | Q(recognition_min_probability__gte=0, recognition_min_probability__lte=1),
                name="exp_recognition_min_probability",
            ),
            models.CheckConstraint(
                condition=Q(promotion_accuracy_margin__gte=0, promotion_accuracy_margin__lte=1)
                & Q(promotion_alignment_margin__gte=0, promotion_alignment_margin__lte=1),
                name="exp_promotion_margins",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def game_settings(self) -> dict[str, int | float]:
        """The rules a round is played under, snapshotted onto every round at its start."""
        return {
            "bubble_size": self.bubble_size,
            "bubble_interval_ms": self.bubble_interval_ms,
            "bubble_max_step": self.bubble_max_step,
            "query_every": self.query_every,
            "time_limit_ms": self.time_limit_ms,
            "top_k": self.top_k,
            "noise_std": self.noise_std,
            "max_points": self.max_points,
            "min_probability": self.recognition_min_probability,  # None: automatic (games/recognition.py)
        }

    def can_be_seen_by(self, user: AbstractBaseUser | AnonymousUser) -> bool:
        """Researchers see only experiments they own or were added to (`Experiment.objects.visible_to`)."""
        return Experiment.objects.visible_to(user).filter(pk=self.pk).exists()


class Contest(models.Model):
    """A period over which a separate leaderboard is kept."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="contests")
    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="contest_ends_after_start")]

    def __str__(self) -> str:
        return self.name
