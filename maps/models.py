"""Per-image click maps, reliability reports, and dataset export jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from games.models import Experiment, Image


def _map_path(click_map: ClickMap, filename: str) -> str:
    return f"maps/{click_map.experiment_id}/{click_map.image_id}/{filename}"


class ClickMap(models.Model):
    """An image's ClickMe map within one experiment, with everything needed to rebuild it.

    `counts` holds the summed integer bubble histogram over the included participants (blur is
    linear, so the map is blur(counts / participants) normalised) and `heatmap` the final
    float map in [0, 1]; both are .npy files of IMAGE_SIZE × IMAGE_SIZE.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="click_maps")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="click_maps")
    parameters = models.JSONField(help_text="Blur, minimum participants and clicks, selection rule.")
    participant_count = models.PositiveIntegerField(default=0)
    round_count = models.PositiveIntegerField(default=0)
    click_count = models.PositiveIntegerField(default=0)
    rounds_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the included round ids.")
    counts = models.FileField(upload_to=_map_path, blank=True)
    heatmap = models.FileField(upload_to=_map_path, blank=True)
    split_half_spearman = models.FloatField(null=True, blank=True)
    split_half_auc = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "image"], name="click_map_unique_per_image"),
            models.CheckConstraint(
                condition=Q(round_count__gte=F("participant_count")), name="click_map_rounds_cover_participants"
            ),
        ]

    def __str__(self) -> str:
        return f"map of {self.image} ({self.participant_count} participants)"

    @property
    def is_ready(self) -> bool:
        """Whether enough participants contributed for the map to be published."""
        return self.participant_count >= self.parameters.get("min_participants", 5) and bool(self.heatmap)


class ReliabilityReport(models.Model):
    """Split-half ceiling and different-image floor of an experiment's maps (docs/maps-and-reliability.md)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="reliability_reports")
    parameters = models.JSONField(help_text="Iterations, seed, map parameters.")
    image_count = models.PositiveIntegerField()
    ceiling_spearman = models.FloatField()
    floor_spearman = models.FloatField()
    ceiling_auc = models.FloatField(null=True, blank=True)
    floor_auc = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"reliability of {self.experiment} at {self.computed_at:%Y-%m-%d %H:%M}"


class Export(models.Model):
    """A dataset export job: filters in, files with checksums out, written by a worker."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="exports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    formats = models.JSONField(default=list, help_text="e.g. ['clicks_csv', 'maps_hdf5', 'manifest'].")
    filters = models.JSONField(default=dict, blank=True, help_text="Date range, quality state.")
    parameters = models.JSONField(default=dict, blank=True, help_text="Map parameters used.")
    since = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, help_text="Only data after this export."
    )
    dataset_version = models.CharField(max_length=64, blank=True)
    progress = models.FloatField(default=0.0)
    counts = models.JSONField(default=dict, blank=True, help_text="Rows, rounds, images, participants written.")
    files = models.JSONField(default=list, blank=True, help_text="[{name, bytes, sha256}]")
    directory = models.CharField(max_length=500, blank=True, help_text="Relative to EXPORT_ROOT.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="export_progress_range"),
            models.CheckConstraint(condition=~Q(status="failed") | ~Q(error=""), name="export_failure_has_error"),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(finished_at__isnull=False), name="export_success_has_time"
            ),
        ]
        indexes = [models.Index(fields=["experiment", "status"], name="export_experiment_idx")]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.experiment} ({self.status})"
