"""Which image a participant plays next (docs/architecture.md, "The game")."""

from __future__ import annotations

import math
import random

from django.db.models import BooleanField, ExpressionWrapper, Q

from games.models import Experiment, Image, Participant, Round


def catch_rounds(*, experiment: Experiment, session_id: int) -> frozenset[int]:
    """The 0-based round indexes of a session that are catch trials.

    Drawing each round independently at the rate leaves many participants with none (at a
    rate of 0.1, a third of 10-round sessions), and those are exactly the sessions a catch
    trial is meant to test. So each session gets its share, round(rate × rounds) and at least
    one, one in each of that many equal blocks of the session (a participant who leaves half
    way has still met half of them), at a position in its block drawn from the session's id:
    fixed for the session (a reload or a resumed session sees the same plan) and unknown to
    the participant.
    """
    rate, total = experiment.catch_trial_rate, experiment.rounds_per_session
    if rate <= 0 or total <= 0:
        return frozenset()
    count = min(total, max(1, math.floor(rate * total + 0.5)))
    rng = random.Random(f"catch-trials:{session_id}")
    return frozenset(rng.randrange(block * total // count, (block + 1) * total // count) for block in range(count))


def choose_image(
    *, experiment: Experiment, participant: Participant, catch_trial: bool = False, rng: random.Random | None = None
) -> Image | None:
    """Pick an unplayed, playable image, fewest valid rounds first; a catch-trial image when asked.

    Breadth first: among the images this participant has not played, those below the
    experiment's target and with the fewest valid rounds come first, ties broken at random so
    that simultaneous players spread over images instead of piling onto one. When no catch-trial
    image is left for this participant, an ordinary one is served instead, and the other way round.
    """
    rng = rng or random.SystemRandom()
    played = Round.objects.filter(participant_id=participant.pk).values("image_id")
    unplayed = Image.objects.filter(image_set_id=experiment.image_set_id, state=Image.State.ACTIVE).exclude(
        pk__in=played
    )
    # The order of preference as sort keys (False first): the asked kind, then below the target,
    # then the fewest valid rounds. One query: the first 500 in that order, of which those that share
    # the best key are the choice (all of them, or 500 of them); then the chosen image's row.
    ranked = unplayed.annotate(
        other_kind=ExpressionWrapper(~Q(is_catch_trial=catch_trial), output_field=BooleanField()),
        at_target=ExpressionWrapper(Q(valid_rounds__gte=experiment.target_maps_per_image), output_field=BooleanField()),
    )
    first = list(
        ranked.order_by("other_kind", "at_target", "valid_rounds").values_list(
            "other_kind", "at_target", "valid_rounds", "pk"
        )[:500]
    )
    if not first:
        return None
    ids = [pk for *key, pk in first if key == list(first[0][:3])]
    return Image.objects.select_related("category").get(pk=rng.choice(ids))
