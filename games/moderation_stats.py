"""What a moderator looks at: per-session statistics, a timing histogram, agreement, and replay data."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from itertools import pairwise

import numpy as np
from django.db.models import Avg, Count, Q, QuerySet
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from games.consensus import consensus_map, normalised_saliency
from games.models import Click, PlaySession, Round

# Inter-bubble intervals in ms. The painting rule allows one bubble per interval (50 ms by default):
# honest hands spread over several bins, a bot's fixed period fills one.
EDGES = [0, 25, 50, 75, 100, 150, 200, 300, 500, 1000]
SVG_WIDTH, SVG_HEIGHT = 120, 28


def with_statistics(sessions: QuerySet[PlaySession]) -> QuerySet[PlaySession]:
    """Annotate rounds, mean bubbles per round and recognised/scored counts, all in the one list query."""
    return sessions.annotate(
        round_total=Count("rounds", distinct=True),
        bubbles_mean=Avg("rounds__bubble_count"),
        recognised=Count("rounds", filter=Q(rounds__outcome=Round.Outcome.CORRECT), distinct=True),
        scored=Count("rounds", filter=Q(rounds__status=Round.Status.SCORED), distinct=True),
    )


def intervals(session_id: int) -> list[int]:
    """Every gap between consecutive bubbles within each round of the session, in ms."""
    rows = Click.objects.filter(round__session_id=session_id).order_by("round_id", "seq")
    gaps: list[int] = []
    previous: tuple[int, int] | None = None
    for round_id, t_ms in rows.values_list("round_id", "t_ms"):
        if previous is not None and previous[0] == round_id:
            gaps.append(t_ms - previous[1])
        previous = (round_id, t_ms)
    return gaps


def histogram(gaps: list[int]) -> list[int]:
    """Counts of gaps per EDGES bin; the last bin takes everything from 1 s up."""
    counts = [0] * len(EDGES)
    for gap in gaps:
        counts[max(bisect_right(EDGES, gap) - 1, 0)] += 1
    return counts


def histogram_svg(gaps: list[int]) -> SafeString:
    """A tiny bar chart of the inter-bubble intervals, with the bins in each bar's tooltip."""
    if not gaps:
        return mark_safe('<span class="quiet">no bubbles</span>')
    counts = histogram(gaps)
    top, width = max(counts), SVG_WIDTH / len(counts)
    labels = [f"{lo}–{hi} ms" for lo, hi in pairwise(EDGES)] + [f"≥ {EDGES[-1]} ms"]
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"><title>{}: {}</title></rect>',
        (
            (f"{i * width:.1f}", f"{SVG_HEIGHT - h:.1f}", f"{width - 1:.1f}", f"{h:.1f}", label, count)
            for i, (count, label) in enumerate(zip(counts, labels, strict=True))
            for h in [SVG_HEIGHT * count / top]
        ),
    )
    return format_html(
        '<svg class="timing-histogram" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="inter-bubble intervals, median {} ms">{}</svg>',
        SVG_WIDTH, SVG_HEIGHT, SVG_WIDTH, SVG_HEIGHT, int(np.median(gaps)), bars,
    )  # fmt: skip


def agreement(round_: Round) -> float | None:
    """Mean z-scored consensus map at the round's bubbles (NSS, games.consensus); None until the image's map is ready.

    The map includes this round's own bubbles, so low values are the signal: a player clicking
    where nobody else does scores near or below zero, a typical player well above.
    """
    consensus = consensus_map(round_.experiment_id, round_.image_id)
    if consensus is None:
        return None
    points = list(round_.clicks.values_list("x", "y"))
    return normalised_saliency(consensus.heatmap, [x for x, _ in points], [y for _, y in points])


def replay_data(rounds: QuerySet[Round]) -> list[dict]:
    """Each round's image and bubbles as the replay script draws them, in play order."""
    rounds = list(rounds.select_related("image").order_by("started_at", "pk"))
    clicks: dict[int, list[list[int]]] = defaultdict(list)
    for round_id, x, y, t_ms in (
        Click.objects.filter(round__in=[r.pk for r in rounds]).order_by("round_id", "seq").values_list(
            "round_id", "x", "y", "t_ms"
        )
    ):  # fmt: skip
        clicks[round_id].append([x, y, t_ms])
    return [
        {
            "round": r.pk,
            "label": f"round {r.pk} · {r.image.name} · {r.get_outcome_display() or r.status}",
            "image_url": reverse("games:image", args=[r.image_id]),
            "bubble_size": int(r.settings.get("bubble_size", 21)),
            "invalidated": r.invalidated_at is not None,
            "clicks": clicks[r.pk],
        }
        for r in rounds
    ]
