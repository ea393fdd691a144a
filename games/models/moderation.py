"""Quality control: automatic flags raised at scoring time, and the moderators' audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from games.models.experiments import Image, PartnerModelVersion
from games.models.play import Participant, PlaySession, Round


class QualityFlag(models.Model):
    """One automatic rule that fired on a round (or a whole session), with its evidence."""

    session = models.ForeignKey(PlaySession, on_delete=models.CASCADE, related_name="flags")
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.CASCADE, related_name="flags")
    rule = models.CharField(max_length=64, help_text="Name of the rule, e.g. 'periodic_timing'.")
    score = models.FloatField(help_text="How strongly the rule fired; its threshold is in the reason.")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Scoring is retried; a rule fires once per round however often it runs.
            models.UniqueConstraint(fields=["round", "rule"], name="flag_once_per_round_rule"),
            models.UniqueConstraint(
                fields=["session", "rule"], condition=Q(round__isnull=True), name="flag_once_per_session_rule"
            ),
        ]
        indexes = [models.Index(fields=["session", "rule"], name="flag_session_idx")]

    def __str__(self) -> str:
        return f"{self.rule} on session {self.session_id}"


class ModerationAction(models.Model):
    """An audit-log entry: who did what to which participant, session, round or image, and why.

    Rows are only ever added; undoing an action is a new action (unban, restore).
    """

    class Kind(models.TextChoices):
        SHADOW_BAN = "shadow_ban", "shadow-ban participant"
        UNBAN = "unban", "unban participant"
        INVALIDATE_ROUND = "invalidate_round", "invalidate round"
        RESTORE_ROUND = "restore_round", "restore round"
        INVALIDATE_SESSION = "invalidate_session", "invalidate session"
        RESTORE_SESSION = "restore_session", "restore session"
        RETIRE_IMAGE = "retire_image", "retire image"
        REJECT_IMAGE = "reject_image", "reject image"
        RESTORE_IMAGE = "restore_image", "restore image"

    class PartnerKind(models.TextChoices):
        """A researcher's action on the live partner (games/services/partners.py), in the same log."""

        PROMOTE_PARTNER = "promote_partner", "promote partner version"
        ROLL_BACK_PARTNER = "roll_back_partner", "roll back partner version"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="moderation_actions")
    kind = models.CharField(max_length=32, choices=Kind.choices + PartnerKind.choices)
    reason = models.TextField()
    participant = models.ForeignKey(Participant, null=True, blank=True, on_delete=models.PROTECT)
    session = models.ForeignKey(PlaySession, null=True, blank=True, on_delete=models.PROTECT)
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.PROTECT)
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT)
    partner_version = models.ForeignKey(PartnerModelVersion, null=True, blank=True, on_delete=models.PROTECT)
    details = models.JSONField(default=dict, blank=True, help_text="What changed, e.g. rounds affected.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="moderation_reason_required"),
            models.CheckConstraint(
                condition=Q(participant__isnull=False)
                | Q(session__isnull=False)
                | Q(round__isnull=False)
                | Q(image__isnull=False)
                | Q(partner_version__isnull=False),
                name="moderation_has_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor} at {self.created_at:%Y-%m-%d %H:%M}"
