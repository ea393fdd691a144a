"""Which image a participant plays next (SPEC §2, image sampling)."""

from __future__ import annotations

import random

from django.db.models import Min, QuerySet

from games.models import Experiment, Image, Participant, Round


def choose_image(*, experiment: Experiment, participant: Participant, rng: random.Random | None = None) -> Image | None:
    """Pick an unplayed, playable image, fewest valid rounds first, catch trials at their rate.

    Breadth first: among the images this participant has not played, those below the
    experiment's target and with the fewest valid rounds come first, ties broken at random so
    that simultaneous players spread over images instead of piling onto one.
    """
    rng = rng or random.SystemRandom()
    played = Round.objects.filter(participant=participant).values("image_id")
    unplayed = Image.objects.filter(image_set=experiment.image_set, state=Image.State.ACTIVE).exclude(pk__in=played)
    want_catch = experiment.catch_trial_rate > 0 and rng.random() < experiment.catch_trial_rate
    pool = unplayed.filter(is_catch_trial=want_catch)
    if want_catch and not pool.exists():
        pool = unplayed.filter(is_catch_trial=False)
    below_target = pool.filter(valid_rounds__lt=experiment.target_maps_per_image)
    return _least_played(below_target if below_target.exists() else pool, rng)


def _least_played(pool: QuerySet[Image], rng: random.Random) -> Image | None:
    fewest = pool.aggregate(fewest=Min("valid_rounds"))["fewest"]
    if fewest is None:
        return None
    ids = list(pool.filter(valid_rounds=fewest).values_list("pk", flat=True)[:500])
    return Image.objects.select_related("category").get(pk=rng.choice(ids))
