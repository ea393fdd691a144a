"""A generation of an experiment's partner: what it learnt from, what came out, and why it went live or not."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from games.models import Experiment, PartnerModelVersion
from maps.models import Export


class Generation(models.Model):
    """One run of export -> co-train -> evaluate -> gate -> promote (evolution/services.py).

    At most one runs per experiment (a unique constraint on the running row), so two starts at
    once cannot both train. A generation that fails or is interrupted says why and leaves the
    live partner as it was: activation is its last step.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        PROMOTED = "promoted", "promoted: the candidate is live"
        REFUSED = "refused", "refused by the promotion gate"
        FAILED = "failed", "failed or interrupted"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="generations")
    number = models.PositiveIntegerField(help_text="1, 2, ... within the experiment.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    parent = models.ForeignKey(
        PartnerModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The live version it started from (train --init).",
    )  # fmt: skip
    candidate = models.ForeignKey(
        PartnerModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="generations"
    )
    export = models.ForeignKey(Export, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    maps_at_start = models.PositiveIntegerField(help_text="Valid maps (counting rounds) when it started.")
    reason = models.TextField(blank=True, help_text="The gate's decision, or what failed.")
    directory = models.CharField(max_length=500, blank=True, help_text="Its files: images, checkpoint, logs.")
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True, help_text="The process running it.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="generation_number_unique"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(status="running"), name="generation_one_running_per_experiment"
            ),
            models.CheckConstraint(
                condition=Q(status="running") | Q(finished_at__isnull=False), name="generation_finished_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"generation {self.number} of {self.experiment} ({self.status})"
