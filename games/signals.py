"""What the games app announces about its rounds, for the apps that derive data from them.

games never imports those apps (docs/architecture.md, "Signals between games and maps"): it
sends these signals once the change is committed, and each app that cares (maps rebuilds its
click maps) connects a receiver in its AppConfig.ready(). With no receiver connected, sending
does nothing, so games works alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

# A scored round that counts for science (Round.objects.counting()) is committed.
# Keyword arguments: experiment_id, image_id.
round_counted = Signal()

# A moderator changed which rounds count on these images of one experiment (a ban, an
# invalidation, a restore, an image's state), and the change is committed.
# Keyword arguments: experiment_id, image_ids (sorted).
rounds_changed = Signal()


def announce_round_counted(*, experiment_id: int, image_id: int) -> None:
    """Send round_counted once the current transaction commits (at once outside one)."""
    transaction.on_commit(
        lambda: round_counted.send(sender=round_counted, experiment_id=experiment_id, image_id=image_id)
    )


def announce_rounds_changed(pairs: Iterable[tuple[int, int]]) -> None:
    """Send rounds_changed per experiment for these (experiment id, image id) pairs once the transaction commits."""
    by_experiment: dict[int, set[int]] = defaultdict(set)
    for experiment_id, image_id in pairs:
        by_experiment[experiment_id].add(image_id)

    def send() -> None:
        for experiment_id, image_ids in sorted(by_experiment.items()):
            rounds_changed.send(sender=rounds_changed, experiment_id=experiment_id, image_ids=sorted(image_ids))

    if by_experiment:
        transaction.on_commit(send)
