"""The partner versions' part of the researcher API: what a version, a decision and a generation look like."""

from __future__ import annotations

from rest_framework import serializers

from evolution.models import Generation
from games.models import PartnerModelVersion, PromotionDecision


class PartnerVersionSerializer(serializers.ModelSerializer):
    partner = serializers.CharField(source="partner.name", read_only=True)
    parent = serializers.CharField(source="parent.version", read_only=True, allow_null=True, default=None)

    class Meta:
        model = PartnerModelVersion
        fields = ["partner", "version", "status", "status_reason", "generation", "parent", "checkpoint", "architecture",
                  "classes", "export_id", "dataset_version", "accuracy", "accuracy_revealed", "alignment",
                  "is_active", "live_since", "created_at"]  # fmt: skip
        read_only_fields = fields


class PartnerVersionCreateSerializer(serializers.Serializer):
    """A checkpoint to register as a candidate (the web process does not read checkpoints: say what it is)."""

    version = serializers.CharField(max_length=100)
    checkpoint = serializers.CharField(max_length=500, help_text="Its path as the model server sees it.")
    classes = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=100_000)
    architecture = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    parent = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    export_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    dataset_version = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    evaluation = serializers.DictField(required=False, allow_null=True, default=None,
                                       help_text="A model_server.evaluate result (its JSON).")  # fmt: skip


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why: it goes into the audit log.")
    to = serializers.CharField(max_length=100, required=False, allow_null=True, default=None,
                               help_text="Roll back to this version (default: the one live before).")  # fmt: skip


class DecisionSerializer(serializers.ModelSerializer):
    candidate = serializers.CharField(source="candidate.version", read_only=True)
    live = serializers.CharField(source="live.version", read_only=True, allow_null=True, default=None)
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = PromotionDecision
        fields = ["kind", "candidate", "live", "passed", "numbers", "reason", "actor", "created_at"]
        read_only_fields = fields


class GenerationSerializer(serializers.ModelSerializer):
    parent = serializers.CharField(source="parent.version", read_only=True, allow_null=True, default=None)
    candidate = serializers.CharField(source="candidate.version", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Generation
        fields = ["number", "status", "parent", "candidate", "export_id", "maps_at_start", "reason", "started_at",
                  "finished_at"]  # fmt: skip
        read_only_fields = fields
