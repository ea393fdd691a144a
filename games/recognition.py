"""When the partner has recognised the target: in its top-k *and* above a probability floor.

Top-k alone rewards chance. With 10 classes and top-1, a partner that sees nothing useful puts
~10 % on every class, and whichever class noise lifts to 16 % is "recognised" — a point award
for a coin toss. So a guess counts only when the target's probability is also at least the
study's floor. The automatic floor is twice the uniform probability, 2 / C for C partner
classes: a guess at chance level (about 1 / C) never scores, while a partner that favours the
target clearly does (docs/running-a-study.md, "Recognised"). With the 1000 ImageNet classes it
is 0.2 %, which leaves the original game's top-5 rule as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

FLOOR_TIMES_CHANCE = 2.0


def recognition_floor(settings: dict, num_classes: int) -> float:
    """The probability the target needs, from a round's rules snapshot and the partner's class count.

    Rounds started before the floor existed have no `min_probability` key: they keep top-k alone.
    """
    if "min_probability" not in settings:
        return 0.0
    chosen = settings["min_probability"]
    if chosen is not None:
        return float(chosen)
    return min(1.0, FLOOR_TIMES_CHANCE / max(num_classes, 1))


def is_recognised(
    classes: Sequence[str], probabilities: Sequence[float], target: str, *, top_k: int, floor: float
) -> bool:
    """Whether the target is among the first `top_k` classes with at least `floor` probability."""
    for label, probability in zip(classes[:top_k], probabilities, strict=False):
        if label == target:
            return probability >= floor
    return False
