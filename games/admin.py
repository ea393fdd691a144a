"""Admin registration for the game's data; moderation actions arrive with the review queue."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from games.models import (
    Category,
    Contest,
    Experiment,
    Image,
    ImageSet,
    ModerationAction,
    Participant,
    PartnerGuess,
    PartnerModel,
    PartnerModelVersion,
    PlaySession,
    QualityFlag,
    Round,
)


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows collected data without letting anyone edit or delete it."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "name", "category", "image_set", "state", "valid_rounds", "is_catch_trial"]
    list_filter = ["image_set", "state", "is_catch_trial", "category"]
    search_fields = ["name", "checksum"]
    readonly_fields = ["preview", "checksum", "original_width", "original_height", "valid_rounds", "created_at"]
    list_select_related = ["category", "image_set"]

    @admin.display(description="")
    def thumbnail(self, image: Image) -> str:
        return format_html('<img src="{}" width="64" height="64" alt="">', reverse("games:image", args=[image.pk]))

    @admin.display(description="crop")
    def preview(self, image: Image) -> str:
        return format_html('<img src="{}" width="256" height="256" alt="">', reverse("games:image", args=[image.pk]))


class PartnerModelVersionInline(admin.TabularInline):
    model = PartnerModelVersion
    extra = 0
    fields = ["version", "checkpoint", "architecture", "is_active", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(PartnerModel)
class PartnerModelAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [PartnerModelVersionInline]


class ContestInline(admin.TabularInline):
    model = Contest
    extra = 0


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "status", "image_set", "partner", "recruitment", "owner"]
    list_filter = ["status", "recruitment"]
    search_fields = ["slug", "title"]
    filter_horizontal = ["researchers"]
    inlines = [ContestInline]
    fieldsets = [
        (None, {"fields": ["slug", "title", "description", "status", "owner", "researchers"]}),
        ("Stimuli and partner", {"fields": ["image_set", "partner", "catch_trial_rate"]}),
        (
            "Game rules",
            {
                "fields": [
                    "bubble_size",
                    "bubble_interval_ms",
                    "bubble_max_step",
                    "query_every",
                    "time_limit_ms",
                    "top_k",
                    "noise_std",
                    "max_points",
                    "rounds_per_session",
                ]
            },
        ),
        (
            "Collection",
            {"fields": ["target_maps_per_image", "retire_on_plateau", "plateau_tolerance", "quality_thresholds"]},
        ),
        (
            "Consent and recruitment",
            {
                "fields": [
                    "consent_version",
                    "consent_text",
                    "minimum_age",
                    "recruitment",
                    "completion_code",
                    "completion_url",
                ]
            },
        ),
    ]


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["username", "source", "score", "ban_state", "created_at"]
    list_filter = ["source", "ban_state"]
    search_fields = ["username"]
    readonly_fields = ["score", "high_score", "banned_at", "created_at", "last_seen_at"]


class RoundInline(ReadOnlyInline):
    model = Round
    fields = ["image", "status", "outcome", "points", "bubble_count", "invalidated_at"]


@admin.register(PlaySession)
class PlaySessionAdmin(admin.ModelAdmin):
    list_display = ["id", "participant", "experiment", "started_at", "pointer_type", "flag_count", "invalidated_at"]
    list_filter = ["experiment", "pointer_type"]
    search_fields = ["participant__username"]
    list_select_related = ["participant", "experiment"]
    inlines = [RoundInline]


class PartnerGuessInline(ReadOnlyInline):
    model = PartnerGuess
    show_change_link = False
    fields = ["query_index", "bubble_count", "classes", "probabilities", "is_correct", "partner_version"]


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["id", "participant", "image", "status", "outcome", "points", "bubble_count", "submitted_at"]
    list_filter = ["status", "outcome", "experiment"]
    search_fields = ["participant__username", "image__name"]
    list_select_related = ["participant", "image__image_set"]
    raw_id_fields = ["session", "participant", "image", "partner_version"]
    inlines = [PartnerGuessInline]


@admin.register(QualityFlag)
class QualityFlagAdmin(admin.ModelAdmin):
    list_display = ["rule", "session", "round", "score", "created_at"]
    list_filter = ["rule"]
    raw_id_fields = ["session", "round"]


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The audit log: readable by staff, never edited or deleted."""

    list_display = ["created_at", "actor", "kind", "participant", "session", "round", "image", "reason"]
    list_filter = ["kind"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
