"""Shapes of the researcher API: read-only output serializers and the one export request."""

from __future__ import annotations

from django.urls import reverse
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from games.api_input import StrictBooleanField, StrictCharField, StrictChoiceField
from games.models import Experiment, Image, Round
from maps.export_jobs import DATA_FORMATS
from maps.export_limits import expires_at
from maps.exports import QUALITY
from maps.models import ClickMap, Export, ReliabilityReport


class ExperimentSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    image_set = serializers.CharField(source="image_set.name")
    partner = serializers.CharField(source="partner.name")
    image_count = serializers.IntegerField(help_text="Images in the experiment's image set.")

    class Meta:
        model = Experiment
        fields = ["slug", "title", "description", "status", "owner", "image_set", "partner", "image_count",
                  "bubble_size", "bubble_interval_ms", "bubble_max_step", "query_every", "time_limit_ms", "top_k",
                  "noise_std", "max_points", "rounds_per_session", "target_maps_per_image", "retire_on_plateau",
                  "plateau_tolerance", "catch_trial_rate", "recruitment", "consent_version", "created_at"]  # fmt: skip


class ClickMapSerializer(serializers.ModelSerializer):
    is_ready = serializers.BooleanField(help_text="Enough participants: the PNG and .npy are served.")
    png_url = serializers.SerializerMethodField()
    npy_url = serializers.SerializerMethodField()

    class Meta:
        model = ClickMap
        fields = ["is_ready", "participant_count", "round_count", "click_count", "parameters",
                  "split_half_spearman", "split_half_auc", "updated_at", "png_url", "npy_url"]  # fmt: skip

    def get_png_url(self, click_map: ClickMap) -> str:
        return reverse("maps:api-map-png", args=[click_map.experiment.slug, click_map.image_id])

    def get_npy_url(self, click_map: ClickMap) -> str:
        return reverse("maps:api-map-npy", args=[click_map.experiment.slug, click_map.image_id])


class ImageSerializer(serializers.ModelSerializer):
    category = serializers.CharField(source="category.name")
    map_status = serializers.SerializerMethodField()
    map = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "name", "category", "state", "is_catch_trial", "valid_rounds", "map_status", "map"]

    @extend_schema_field(serializers.ChoiceField(choices=["none", "collecting", "ready"]))
    def get_map_status(self, image: Image) -> str:
        click_map = _experiment_map(image)
        if click_map is None:
            return "none"
        return "ready" if click_map.is_ready else "collecting"

    @extend_schema_field(ClickMapSerializer(allow_null=True))
    def get_map(self, image: Image) -> dict | None:
        click_map = _experiment_map(image)
        return None if click_map is None else ClickMapSerializer(click_map).data


def _experiment_map(image: Image) -> ClickMap | None:
    # The view prefetches this experiment's map (at most one) into `experiment_maps`.
    return next(iter(image.experiment_maps), None)


class RoundSerializer(serializers.ModelSerializer):
    """A round as researchers see it: pseudonymous, with no panel id or address anywhere."""

    participant = serializers.CharField(source="participant.username", help_text="Pseudonymous username.")
    participant_shadow_banned = serializers.BooleanField(source="participant.is_shadow_banned")
    image_name = serializers.CharField(source="image.name")
    partner_version = serializers.CharField(allow_null=True, help_text="partner@version that scored the round.")
    invalidated = serializers.SerializerMethodField()

    class Meta:
        model = Round
        fields = ["id", "participant", "participant_shadow_banned", "session", "image", "image_name", "status",
                  "outcome", "points", "bubble_count", "recognised_at_query", "recognised_at_ms", "is_catch_trial",
                  "partner_version", "started_at", "submitted_at", "scored_at", "invalidated",
                  "invalidated_at"]  # fmt: skip

    def get_invalidated(self, round_: Round) -> bool:
        return round_.invalidated_at is not None


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField()


class ExportSerializer(serializers.ModelSerializer):
    experiment = serializers.CharField(source="experiment.slug")
    created_by = serializers.CharField(source="created_by.username")
    url = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField(
        help_text="When the files are deleted (EXPORT_RETENTION_DAYS after creation); null when kept for ever."
    )

    class Meta:
        model = Export
        fields = ["id", "url", "experiment", "created_by", "status", "formats", "filters", "parameters", "since",
                  "dataset_version", "progress", "counts", "files", "error", "created_at", "started_at",
                  "finished_at", "expires_at"]  # fmt: skip

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_expires_at(self, export: Export) -> str | None:
        moment = expires_at(export)
        return serializers.DateTimeField().to_representation(moment) if moment else None

    def get_url(self, export: Export) -> str:
        return reverse("maps:api-export", args=[export.pk])

    @extend_schema_field(ExportFileSerializer(many=True))
    def get_files(self, export: Export) -> list[dict]:
        return [
            {**entry, "url": reverse("maps:api-export-file", args=[export.pk, entry["name"]])} for entry in export.files
        ]


@extend_schema_field({"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})
class MomentField(StrictCharField):
    """A date (YYYY-MM-DD) or an ISO 8601 datetime, as a string; the export service reads it (export_jobs)."""

    def to_internal_value(self, data: object) -> str:
        text = super().to_internal_value(data)
        try:
            parsed = parse_date(text) or parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is None:
            raise serializers.ValidationError(f"must be a date (YYYY-MM-DD) or an ISO 8601 datetime, not {text!r}")
        return text


class ExportFiltersSerializer(serializers.Serializer):
    """Which rounds to export; the export service checks that "from" comes before "to"."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built here because "from" is a Python keyword and cannot be a class attribute.
        moment = "A date (YYYY-MM-DD, whole UTC day) or an ISO 8601 datetime; inclusive."
        return {
            "from": MomentField(required=False, max_length=64, help_text=moment),
            "to": MomentField(required=False, max_length=64, help_text=moment),
            "quality": StrictChoiceField(choices=list(QUALITY), default="valid"),
        }


class ExportCreateSerializer(serializers.Serializer):
    """What to export: data formats (the manifest with checksums is always added: not one to name) and filters."""

    formats = serializers.ListField(child=StrictChoiceField(choices=DATA_FORMATS), min_length=1,
                                    max_length=len(DATA_FORMATS))  # fmt: skip
    filters = ExportFiltersSerializer(required=False)
    since_last = StrictBooleanField(
        default=False, help_text="Only rounds submitted after this experiment's last successful export."
    )


class ReliabilityReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReliabilityReport
        fields = ["computed_at", "image_count", "ceiling_spearman", "floor_spearman", "ceiling_auc", "floor_auc",
                  "parameters"]  # fmt: skip


class ImageReliabilitySerializer(serializers.Serializer):
    image = serializers.IntegerField(source="image_id")
    image_name = serializers.CharField(source="image.name")
    participant_count = serializers.IntegerField()
    split_half_spearman = serializers.FloatField(allow_null=True)
    split_half_auc = serializers.FloatField(allow_null=True)


class ReliabilitySerializer(serializers.Serializer):
    report = ReliabilityReportSerializer(allow_null=True, help_text="The latest report; null before the first.")
    images = ImageReliabilitySerializer(many=True)
