"""Admin registration for the game's data, with the moderators' review queue and actions.

Design: docs/architecture.md, "Quality and moderation".
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from games import moderation_stats as stats
from games.admin_moderation import (
    IMAGE_MOVES,
    PARTICIPANT_MOVES,
    ROUND_MOVES,
    SESSION_MOVES,
    ExperimentScopedAdmin,
    ModeratedAdmin,
    replay_widget,
)
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


# A subquery, not Count(): ordering by an aggregate would need the annotation first.
SKIPS = Coalesce(
    Subquery(
        Round.objects.filter(image=OuterRef("pk"), outcome=Round.Outcome.SKIPPED)
        .order_by()
        .values("image")
        .annotate(n=Count("pk"))
        .values("n")
    ),
    0,
)


class SkippedOftenFilter(admin.SimpleListFilter):
    """Images players skip as "strange label or poor quality": candidates for rejection."""

    title = "skipped as strange or poor quality"
    parameter_name = "skipped"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("1", "at least once"), ("3", "3 times or more"), ("10", "10 times or more")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(skip_count__gte=int(self.value())) if self.value() in {"1", "3", "10"} else queryset


@admin.register(Image)
class ImageAdmin(ModeratedAdmin):
    list_display = ["thumbnail", "name", "category", "image_set", "state", "valid_rounds", "skips", "is_catch_trial"]
    list_filter = [SkippedOftenFilter, "image_set", "state", "is_catch_trial", "category"]
    search_fields = ["name", "checksum"]
    readonly_fields = ["preview", "checksum", "original_width", "original_height", "valid_rounds", "state",
                       "state_changed_at", "created_at"]  # fmt: skip
    list_select_related = ["category", "image_set"]
    experiment_path = "image_set__experiments"
    moves = IMAGE_MOVES

    def get_ordering(self, request: HttpRequest) -> list:
        # The most-skipped images first. An expression, not the annotation's name: ModelAdmin
        # orders the queryset before get_queryset annotates it.
        return [SKIPS.desc(), "pk"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(skip_count=SKIPS)

    @admin.display(description="skips", ordering="skip_count")
    def skips(self, image: Image) -> int:
        return image.skip_count

    @admin.display(description="")
    def thumbnail(self, image: Image) -> str:
        return format_html('<img src="{}" width="64" height="64" alt="">', reverse("games:image", args=[image.pk]))

    @admin.display(description="crop")
    def preview(self, image: Image) -> str:
        return format_html('<img src="{}" width="256" height="256" alt="">', reverse("games:image", args=[image.pk]))


class PartnerModelVersionInline(admin.TabularInline):
    model = PartnerModelVersion
    extra = 0
    fields = ["version", "checkpoint", "architecture", "status", "generation", "parent", "accuracy_revealed",
              "alignment", "is_active", "created_at"]  # fmt: skip
    # A version goes live only through the gate or a promotion with a reason (docs/evolution.md), never a tick here.
    readonly_fields = ["status", "generation", "parent", "accuracy_revealed", "alignment", "is_active", "created_at"]


@admin.register(PartnerModel)
class PartnerModelAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [PartnerModelVersionInline]


class ContestInline(admin.TabularInline):
    model = Contest
    extra = 0


@admin.register(Experiment)
class ExperimentAdmin(ExperimentScopedAdmin):
    experiment_path = "pk"
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
class ParticipantAdmin(ModeratedAdmin):
    list_display = ["username", "source", "score", "ban_state", "banned_at", "created_at"]
    list_filter = ["ban_state", "source"]
    search_fields = ["username"]
    readonly_fields = ["score", "high_score", "ban_state", "banned_at", "created_at", "last_seen_at"]
    experiment_path = "sessions__experiment"
    moves = PARTICIPANT_MOVES


class RoundInline(ReadOnlyInline):
    model = Round
    fields = ["image", "status", "outcome", "points", "bubble_count", "invalidated_at"]


class FlaggedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "flagged"), ("no", "not flagged"), ("invalidated", "invalidated")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        filters = {"yes": Q(flag_count__gt=0), "no": Q(flag_count=0), "invalidated": Q(invalidated_at__isnull=False)}
        return queryset.filter(filters[self.value()]) if self.value() in filters else queryset


@admin.register(PlaySession)
class PlaySessionAdmin(ModeratedAdmin):
    """The review queue: flagged sessions first, with what a moderator needs to judge them."""

    list_display = ["id", "participant", "experiment", "started_at", "flag_count", "flags_listed", "rounds_n",
                    "bubbles_per_round", "success_rate", "timing", "invalidated_at"]  # fmt: skip
    list_filter = [FlaggedFilter, "experiment", "pointer_type"]
    search_fields = ["participant__username"]
    list_select_related = ["participant", "experiment"]
    ordering = ["-flag_count", "-started_at"]
    list_per_page = 50
    readonly_fields = ["flags_listed", "statistics", "timing", "replay"]
    inlines = [RoundInline]
    moves = SESSION_MOVES

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return stats.with_statistics(super().get_queryset(request)).prefetch_related("flags")

    @admin.display(description="rounds", ordering="round_total")
    def rounds_n(self, session: PlaySession) -> int:
        return session.round_total

    @admin.display(description="bubbles / round", ordering="bubbles_mean")
    def bubbles_per_round(self, session: PlaySession) -> str:
        return "—" if session.bubbles_mean is None else f"{session.bubbles_mean:.0f}"

    @admin.display(description="recognised")
    def success_rate(self, session: PlaySession) -> str:
        return f"{session.recognised / session.scored:.0%}" if session.scored else "—"

    @admin.display(description="inter-bubble timing")
    def timing(self, session: PlaySession) -> str:
        return stats.histogram_svg(stats.intervals(session.pk))

    @admin.display(description="flags")
    def flags_listed(self, session: PlaySession) -> str:
        flags = sorted(session.flags.all(), key=lambda f: -f.score)
        return format_html_join(
            "", '<div title="{}"><b>{}</b> {}{}</div>',
            ((f.reason, f.rule, f"{f.score:.2f}", f" · round {f.round_id}" if f.round_id else "") for f in flags),
        ) or "—"  # fmt: skip

    @admin.display(description="statistics")
    def statistics(self, session: PlaySession) -> str:
        agreements = [stats.agreement(r) for r in session.rounds.filter(invalidated_at__isnull=True)]
        known = [a for a in agreements if a is not None]
        agreement = f"{sum(known) / len(known):.2f} (NSS, {len(known)} rounds)" if known else "no map ready yet"
        return format_html(
            "{} rounds, {} bubbles per round, {} recognised; agreement with consensus: {}",
            self.rounds_n(session), self.bubbles_per_round(session), self.success_rate(session), agreement,
        )  # fmt: skip

    @admin.display(description="replay")
    def replay(self, session: PlaySession) -> str:
        return replay_widget(session.rounds.all())


class PartnerGuessInline(ReadOnlyInline):
    model = PartnerGuess
    show_change_link = False
    fields = ["query_index", "bubble_count", "classes", "probabilities", "is_correct", "partner_version"]


@admin.register(Round)
class RoundAdmin(ModeratedAdmin):
    list_display = ["id", "participant", "image", "status", "outcome", "points", "bubble_count", "submitted_at",
                    "invalidated_at"]  # fmt: skip
    list_filter = ["status", "outcome", "experiment"]
    search_fields = ["participant__username", "image__name"]
    list_select_related = ["participant", "image__image_set"]
    raw_id_fields = ["session", "participant", "image", "partner_version"]
    readonly_fields = ["invalidated_at", "replay"]
    inlines = [PartnerGuessInline]
    moves = ROUND_MOVES

    @admin.display(description="replay")
    def replay(self, round_: Round) -> str:
        return replay_widget(Round.objects.filter(pk=round_.pk))


@admin.register(QualityFlag)
class QualityFlagAdmin(ExperimentScopedAdmin):
    list_display = ["rule", "session", "round", "score", "reason", "created_at"]
    list_filter = ["rule"]
    raw_id_fields = ["session", "round"]
    experiment_path = "session__experiment"


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The audit log: readable by staff, never edited or deleted."""

    list_display = ["created_at", "actor", "kind", "participant", "session", "round", "image", "reason", "details"]
    list_filter = ["kind", "actor"]
    search_fields = ["reason", "participant__username"]
    list_select_related = ["actor", "participant", "session__participant", "round__image", "image__image_set"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
