"""The maps' safety net: find maps older than the rounds that feed them, and have them rebuilt.

A map is rebuilt by a task enqueued when a round is scored; if that enqueue is lost (the broker
was down at that moment, a worker died holding the task), the map would stay stale until someone
ran `rebuild_maps`. Beat runs this sweep every MAP_SWEEP_EVERY_S seconds (default 60), as the
scoring sweep does for rounds (docs/operations.md, "Faults"). Maps are derived data, so a
rebuild too many costs a little CPU and nothing else.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Max
from django.utils import timezone

from games.models import Round
from maps.models import ClickMap
from maps.services import enqueue_map_build

LOOK_BACK = timedelta(days=1)  # rounds scored earlier had a full day of sweeps already


def stale_maps(*, look_back: timedelta = LOOK_BACK) -> list[tuple[int, int]]:
    """(experiment id, image id) of each map missing or last built before its newest counting round."""
    newest = (
        Round.objects.counting()
        .filter(scored_at__gte=timezone.now() - look_back)
        .values("experiment_id", "image_id")
        .annotate(last=Max("scored_at"))
    )
    built = {
        (experiment_id, image_id): updated
        for experiment_id, image_id, updated in ClickMap.objects.filter(
            image_id__in={row["image_id"] for row in newest}
        ).values_list("experiment_id", "image_id", "updated_at")
    }
    return sorted(
        (row["experiment_id"], row["image_id"])
        for row in newest
        if built.get((row["experiment_id"], row["image_id"])) is None
        or built[(row["experiment_id"], row["image_id"])] < row["last"]
    )


def enqueue_stale_maps(*, look_back: timedelta = LOOK_BACK) -> int:
    """Enqueue a rebuild of every stale map; returns how many."""
    stale = stale_maps(look_back=look_back)
    for experiment_id, image_id in stale:
        enqueue_map_build(experiment_id=experiment_id, image_id=image_id, coalesce=False)  # the net never waits
    return len(stale)
