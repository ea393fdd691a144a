"""How well the quality rules catch simulated cheaters: players caught per kind, and the per-rule table.

Reporting for `manage.py simulate_players --cheat KIND` and the cheat-detection tests
(docs/architecture.md, "Quality and moderation"); the rules themselves and their names are
games.quality.RULES, so a new rule gets its column here without a change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from games.models import QualityFlag
from games.quality import RULES


def detection_counts(groups: Mapping[str, Sequence[tuple[Sequence[int], bool]]]) -> dict[str, Counter]:
    """Per kind of player (each player: its session ids, whether an upload was refused), players caught by what."""
    sessions = {pk for players in groups.values() for ids, _ in players for pk in ids}
    rules_by_session: dict[int, set[str]] = defaultdict(set)
    for session_id, rule in QualityFlag.objects.filter(session_id__in=sessions).values_list("session_id", "rule"):
        rules_by_session[session_id].add(rule)
    counts = {}
    for kind, players in groups.items():
        tally: Counter = Counter()
        for ids, refused in players:
            rules = set().union(*(rules_by_session[pk] for pk in ids)) if ids else set()
            tally["players"] += 1
            tally["refused"] += refused
            tally["flagged"] += bool(rules)
            tally["caught"] += bool(rules) or refused
            tally.update(rules)
        counts[kind] = tally
    return counts


def detection_table(counts: Mapping[str, Counter]) -> list[str]:
    """The per-rule table: players of each kind refused at upload, flagged by each rule, and caught by either."""
    columns = [(rule, len(rule) + 2) for rule in RULES]
    header = f"{'players':<14}{'n':>4}{'refused':>9}" + "".join(f"{rule:>{width}}" for rule, width in columns)
    lines = [header + f"{'flagged':>9}{'caught':>8}{'rate':>7}"]
    for kind, tally in counts.items():
        rate = tally["caught"] / tally["players"] if tally["players"] else 0.0
        lines.append(
            f"{kind:<14}{tally['players']:>4}{tally['refused']:>9}"
            + "".join(f"{tally[rule]:>{width}}" for rule, width in columns)
            + f"{tally['flagged']:>9}{tally['caught']:>8}{rate:>7.0%}"
        )
    return lines
