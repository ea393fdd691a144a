"""Admin registration for maps, reliability reports and export jobs."""

from __future__ import annotations

from django.contrib import admin

from maps.models import ClickMap, Export, ReliabilityReport


@admin.register(ClickMap)
class ClickMapAdmin(admin.ModelAdmin):
    list_display = ["image", "experiment", "participant_count", "round_count", "split_half_spearman", "updated_at"]
    list_filter = ["experiment"]
    list_select_related = ["image__image_set", "experiment"]
    readonly_fields = [field.name for field in ClickMap._meta.fields]


@admin.register(ReliabilityReport)
class ReliabilityReportAdmin(admin.ModelAdmin):
    list_display = ["experiment", "image_count", "ceiling_spearman", "floor_spearman", "computed_at"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["id", "experiment", "status", "progress", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "experiment"]
    readonly_fields = ["status", "progress", "counts", "files", "directory", "error", "started_at", "finished_at"]
