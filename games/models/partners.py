"""The promotion gate's record: every decision on a partner version going live, with its numbers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from games.models.experiments import Experiment, PartnerModelVersion


class PromotionDecision(models.Model):
    """One decision about a partner version for an experiment: the gate's, or a researcher's.

    The gate's numbers (candidate's and live version's accuracy with the reveal and alignment, the
    margins) are kept as they were decided, so a later change of the experiment's margins or a
    re-evaluation never rewrites why a version went live or not (docs/evolution.md, "The gate").
    """

    class Kind(models.TextChoices):
        GATE = "gate", "promotion gate"
        PROMOTE = "promote", "manual promotion"
        ROLL_BACK = "roll_back", "roll back"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="promotion_decisions")
    candidate = models.ForeignKey(PartnerModelVersion, on_delete=models.PROTECT, related_name="decisions")
    live = models.ForeignKey(
        PartnerModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions_as_live",
        help_text="The live version it was compared with (none when nothing was live).",
    )  # fmt: skip
    kind = models.CharField(max_length=16, choices=Kind.choices)
    passed = models.BooleanField(help_text="Whether the candidate went (or was sent) live.")
    numbers = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="promotion_reason_required"),
            models.CheckConstraint(
                condition=Q(kind="gate") | Q(actor__isnull=False), name="promotion_manual_has_actor"
            ),
        ]

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "refused"
        return f"{self.get_kind_display()} of {self.candidate} for {self.experiment}: {verdict}"
