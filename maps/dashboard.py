"""Queries and chart geometry for the researcher dashboard; the templates draw the SVG."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, IntegerField, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from games.models import Experiment, Image, PartnerModelVersion, PromotionDecision, Round
from maps.models import ClickMap
from maps.reliability import OVERLAP_LABELS
from maps.services import experiment_parameters, reliability_warnings

# The published split-half Spearman ceiling of ImageNet ClickMe (docs/maps-and-reliability.md). It is a
# reference only for studies of ImageNet ClickMe images, so it is drawn only for those.
PUBLISHED_CEILING = 0.65753
# ImageNet file names (ILSVRC2012_val_00001234.JPEG, n01440764_10026.JPEG), optionally under folders.
IMAGENET_NAME = re.compile(r"(?:^|/)(?:ILSVRC2012_(?:val|test)_\d{8}|n\d{8}_\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
# Files for serre-lab's scripts (docs/maps-and-reliability.md): offered, but not ticked by default.
MAX_DAYS = 60  # the daily charts stay readable up to about this many bars


@dataclass
class Chart:
    """A bar chart laid out in SVG user units: bars, y-axis ticks, x labels and an optional reference line."""

    width: int
    height: int
    bars: list[dict] = field(default_factory=list)
    ticks: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    reference: dict | None = None
    plot: dict = field(default_factory=dict)


def bar_chart(
    series: list[tuple[str, float]],
    *,
    width: int = 360,
    height: int = 180,
    max_value: float | None = None,
    reference: tuple[float, str] | None = None,
    max_labels: int = 6,
) -> Chart:
    """Lay out one bar per (label, value), on a y axis from 0 to a round number at or above the largest value.

    The default size is about the size a chart is drawn at in the dashboard's grid, so that its
    11-unit text appears at about 11 px.
    """
    left, right, top, bottom = 40, 8, 12, 26  # room for tick labels on the left and day labels below
    plot_width, plot_height = width - left - right, height - top - bottom
    top_value = max_value or _nice_ceiling(max((value for _, value in series), default=0))
    chart = Chart(width, height, plot={"x": left, "y": top, "width": plot_width, "height": plot_height,
                                       "bottom": top + plot_height, "right": left + plot_width})  # fmt: skip
    step = plot_width / max(len(series), 1)
    label_every = math.ceil(len(series) / max_labels) or 1
    for index, (label, value) in enumerate(series):
        bar_height = plot_height * max(min(value, top_value), 0) / top_value
        x = left + index * step
        # Rounded here: templates print floats as they are, and SVG needs no more than 0.1 unit.
        geometry = {"x": x + step * 0.12, "y": top + plot_height - bar_height, "width": step * 0.76,
                    "height": bar_height, "cx": x + step / 2}  # fmt: skip
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        rounded = {key: round(number, 1) for key, number in geometry.items()}
        chart.bars.append({**rounded, "label": label, "value": text})
        if index % label_every == 0:
            chart.labels.append({"x": round(x + step / 2, 1), "y": height - 8, "text": label})
    # Counts get no tick at a half (2.5 participants); fractions such as Spearman's do.
    counts = all(isinstance(value, int) for _, value in series)
    for fraction in (0, 1) if counts and top_value % 2 else (0, 0.5, 1):
        chart.ticks.append({"x": left - 6, "y": round(top + plot_height * (1 - fraction), 1),
                            "text": f"{top_value * fraction:g}"})  # fmt: skip
    if reference is not None:
        chart.reference = {"y": round(top + plot_height * (1 - reference[0] / top_value), 1),
                           "text": f"{reference[1]} {reference[0]:.3f}"}  # fmt: skip
    return chart


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above value (at least 1), so axis ticks read well."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def counting_rounds(experiment: Experiment) -> QuerySet[Round]:
    """Rounds that feed maps (`RoundQuerySet.counting`)."""
    return Round.objects.counting().filter(experiment=experiment)


def image_progress(experiment: Experiment) -> dict:
    """How many images reached the target number of participants, and the spread of participants per image."""
    images = Image.objects.filter(image_set=experiment.image_set, is_catch_trial=False).exclude(
        state=Image.State.REJECTED
    )
    per_image = dict(
        counting_rounds(experiment).filter(image__in=images).values("image")
        .annotate(participants=Count("participant", distinct=True)).values_list("image", "participants")
    )  # fmt: skip
    total, target = images.count(), experiment.target_maps_per_image
    at_target = sum(1 for count in per_image.values() if count >= target)
    started = len(per_image) - at_target
    width = math.ceil(target / 10)  # at most about ten bins below the target
    bins = [(f"{low}" if width == 1 else f"{low}–{low + width - 1}", low) for low in range(0, target, width)]
    histogram = [0] * (len(bins) + 1)
    for count in [*per_image.values(), *[0] * (total - len(per_image))]:
        histogram[min(count // width, len(bins))] += 1
    series = [(label, n) for (label, _), n in zip(bins, histogram, strict=False)] + [(f"≥{target}", histogram[-1])]
    not_started = total - at_target - started
    segments, offset = [], 0.0
    for name, count in (("at-target", at_target), ("started", started), ("not-started", not_started)):
        width = 100 * count / total if total else 0
        segments.append({"class": name, "count": count, "x": round(offset, 2), "width": round(width, 2)})
        offset += width
    return {"total": total, "target": target, "at_target": at_target, "started": started,
            "not_started": not_started, "segments": segments, "chart": bar_chart(series, max_labels=12),
            "map_minimum": experiment_parameters(experiment.pk).min_participants}  # fmt: skip


def _days(experiment: Experiment, today: date) -> list[date]:
    """The days the daily charts cover: from the first round (at most MAX_DAYS back) to the last, at least a week."""
    span = Round.objects.filter(experiment=experiment, submitted_at__isnull=False).aggregate(
        first=Min("submitted_at"), last=Max("submitted_at")
    )
    last = timezone.localdate(span["last"]) if span["last"] else today
    first = timezone.localdate(span["first"]) if span["first"] else last
    count = min(max((last - first).days + 1, 7), MAX_DAYS)
    return [last - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def _per_day(experiment: Experiment, aggregate: Count, today: date | None) -> Chart:
    days = _days(experiment, today or timezone.localdate())
    # A range on the column itself (not `__date`), so round_experiment_time_idx answers it.
    zone = timezone.get_current_timezone()
    start, end = (datetime.combine(day, time.min, tzinfo=zone) for day in (days[0], days[-1] + timedelta(days=1)))
    rows = (
        Round.objects.filter(experiment=experiment, submitted_at__gte=start, submitted_at__lt=end)
        .annotate(day=TruncDate("submitted_at")).values("day").annotate(n=aggregate).values_list("day", "n")
    )  # fmt: skip
    counts = dict(rows)
    return bar_chart([(f"{day:%b} {day.day}", counts.get(day, 0)) for day in days])


def rounds_per_day(experiment: Experiment, *, today: date | None = None) -> Chart:
    """Rounds submitted per day, as a chart."""
    return _per_day(experiment, Count("pk"), today)


def active_participants_per_day(experiment: Experiment, *, today: date | None = None) -> Chart:
    """Participants who submitted at least one round per day, as a chart."""
    return _per_day(experiment, Count("participant", distinct=True), today)


def uses_imagenet_clickme(experiment: Experiment) -> bool:
    """Whether every (non-catch) image of the study is an ImageNet image by its file name: only then does
    the published ImageNet ClickMe ceiling compare with the study's own."""
    names = Image.objects.filter(image_set=experiment.image_set, is_catch_trial=False).values_list("name", flat=True)
    found = False
    for name in names.iterator():
        if not IMAGENET_NAME.search(name):
            return False
        found = True
    return found


def reliability_summary(experiment: Experiment) -> dict:
    """The latest ceiling and floor with their metric names, warnings, and the spread of per-image Spearman values."""
    report = experiment.reliability_reports.first()
    values = ClickMap.objects.filter(experiment=experiment, split_half_spearman__isnull=False).values_list(
        "split_half_spearman", flat=True
    )
    histogram = [0] * 10
    for value in values:
        histogram[min(max(int(value * 10), 0), 9)] += 1  # negative values land in the lowest bin
    per_image = bar_chart([(f"{low / 10:.1f}", n) for low, n in enumerate(histogram)], width=540, max_labels=10)
    summary = {"report": report, "image_count": len(values), "per_image": per_image}
    if report is not None:
        recipe = report.parameters.get("reliability", {})
        overlap = OVERLAP_LABELS[recipe.get("overlap", "mean-iou")]  # reports before issue 15 scored the mean IoU
        summary.update(overlap=overlap, recipe=recipe.get("recipe", "clickme-v1"),
                       selection=report.parameters.get("selection_recipe", "first-counting"),
                       warnings=report.parameters.get("warnings", reliability_warnings(report)))  # fmt: skip
        bars = [("ceiling ρ", report.ceiling_spearman), ("floor ρ", report.floor_spearman)]
        if report.ceiling_auc is not None and report.floor_auc is not None:
            bars += [(f"ceiling {overlap}", report.ceiling_auc), (f"floor {overlap}", report.floor_auc)]
        reference = None
        if uses_imagenet_clickme(experiment):
            reference = (PUBLISHED_CEILING, "published ImageNet ClickMe ceiling ρ")
        summary["imagenet_reference"] = reference is not None
        summary["overall"] = bar_chart(bars, width=540, max_value=1.0, reference=reference)
    return summary


def experiment_list(experiments: QuerySet[Experiment]) -> QuerySet[Experiment]:
    """Experiments with their image and round counts, newest first."""
    # Subqueries rather than two joined Counts, which would multiply images by rounds before counting.
    images = Image.objects.filter(image_set=OuterRef("image_set")).values("image_set").annotate(n=Count("pk"))
    rounds = Round.objects.filter(experiment=OuterRef("pk")).values("experiment").annotate(n=Count("pk"))
    return (
        experiments.select_related("image_set", "owner")
        .annotate(image_count=_count(images), round_count=_count(rounds))
        .order_by("-created_at")
    )


def _count(counted: QuerySet) -> Coalesce:
    return Coalesce(Subquery(counted.values("n")), Value(0), output_field=IntegerField())


def gallery_images(experiment: Experiment) -> QuerySet[Image]:
    """The experiment's images, those with the most participants in their map first."""
    maps = ClickMap.objects.filter(experiment=experiment)
    participants = maps.filter(image=OuterRef("pk")).values("participant_count")
    return (
        Image.objects.filter(image_set=experiment.image_set, is_catch_trial=False)
        .select_related("category")
        .annotate(map_participants=Coalesce(Subquery(participants[:1]), Value(0), output_field=IntegerField()))
        .order_by("-map_participants", "pk")
        .prefetch_related(Prefetch("click_maps", maps, to_attr="experiment_maps"))
    )


def partner_generations(experiment: Experiment) -> dict:
    """The partner's versions by generation: lineage, evaluation, status, rounds played against each; the decisions.

    The rounds column counts this experiment's rounds scored by the version (docs/evolution.md).
    """
    rounds = Count("rounds", filter=Q(rounds__experiment=experiment))
    versions = (
        PartnerModelVersion.objects.filter(partner_id=experiment.partner_id)
        .select_related("parent")
        .annotate(round_count=rounds)
        .order_by("generation", "created_at")
    )
    decisions = PromotionDecision.objects.filter(experiment=experiment).select_related("candidate", "live", "actor")
    return {"versions": list(versions), "decisions": list(decisions[:20]), "every": experiment.evolve_every_maps}
