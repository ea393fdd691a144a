"""The partner's live answers, remembered in the cache so that scoring need not ask again.

A live guess (rounds.live_guess) and scoring (scoring.score_round) put the same question to the
partner at a query point: the same first bubbles (stored clicks are append-only), image, bubble
size and noise seed. Given the same model version the answer is the same, so scoring reuses what
the live guess was told instead of paying for the forward pass twice (docs/architecture.md, "The
path of a click"). The answer is the server's own, never anything the browser sent.

The memo is only a saving: a cache that cannot be reached (Redis down, docs/operations.md,
"Faults, and what the design promises") or an entry that has expired only means scoring asks
the partner, as it did before. Nothing here ever raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.cache import cache

from games.models import Round
from model_server.client import Guess

logger = logging.getLogger(__name__)

# Long enough for a round resumed late in its session (rounds.RESUME_WITHIN) and for scoring that
# waited while the partner was away; scoring forgets a round's entries once it has stored them.
REMEMBER_FOR_S = 6 * 3600


def _key(round_: Round, query_index: int) -> str:
    # The client's round id beside the primary key: ids come back after a database is reset while
    # the cache is kept (tests, a restored backup), and another round's answers must never score this one.
    return f"live-guess:{round_.pk}:{round_.client_round_id}:{query_index}"


def remember(round_: Round, query_index: int, guess: Guess) -> None:
    """Keep the partner's live answer at a query point, as much of it as scoring stores (its top k)."""
    top_k = round_.settings["top_k"]
    entry = (guess.model_version, guess.classes[:top_k], guess.indices[:top_k], guess.probabilities[:top_k])
    try:
        cache.set(_key(round_, query_index), entry, timeout=REMEMBER_FOR_S)
    except Exception as exc:  # the Redis client raises its own errors, not OSError; the guess is answered anyway
        logger.warning("could not remember the live guess of round %s: %s", round_.pk, exc)


def recall(round_: Round, query_indices: Sequence[int]) -> dict[int, Guess]:
    """The remembered answers at these query points, by query index, in one cache call ({} when it fails).

    Each is rebuilt as the Guess the partner gives scoring for the same item: the model server answers
    a larger k with the same ranking, so the top k of the live answer is the scoring answer.
    """
    keys = {_key(round_, q): q for q in query_indices}
    try:
        return {
            keys[key]: Guess(classes=list(classes), indices=list(indices), probabilities=list(probabilities),
                             model_version=version)
            for key, (version, classes, indices, probabilities) in cache.get_many(list(keys)).items()
        }  # fmt: skip
    except Exception as exc:  # as above, or an entry of another shape: scoring then asks the partner at every point
        logger.warning("could not read the live guesses of round %s: %s", round_.pk, exc)
        return {}


def forget(round_: Round, query_indices: Sequence[int]) -> None:
    """Drop a scored round's entries: its guesses are stored now, and the cache holds every player's."""
    try:
        cache.delete_many([_key(round_, q) for q in query_indices])
    except Exception as exc:  # they expire on their own
        logger.warning("could not forget the live guesses of round %s: %s", round_.pk, exc)
