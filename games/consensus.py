"""The consensus map of an image and how well a set of bubbles agrees with it: one home for both.

Two readers need them: the low-consensus quality rule (games.quality) and the moderators'
agreement column (games.moderation_stats). The map itself is built by the maps app, which games
never imports (docs/architecture.md, "Signals between games and maps"): maps registers a
provider with `set_consensus_provider` in its AppConfig.ready(). Without a provider (games
alone) no image has a consensus map, exactly as before an image's map is ready: the rule does
not fire and the agreement is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConsensusMap:
    """An image's published heatmap in one experiment, (H, W) in [0, 1], and how many participants made it."""

    heatmap: np.ndarray
    participants: int


Provider = Callable[[int, int], "ConsensusMap | None"]
_provider: Provider | None = None


def set_consensus_provider(provider: Provider | None) -> None:
    """Register what answers consensus_map(experiment_id, image_id) (None: no provider)."""
    global _provider
    _provider = provider


def consensus_map(experiment_id: int, image_id: int) -> ConsensusMap | None:
    """The image's consensus map in the experiment, or None while it has none (or no app provides maps)."""
    return _provider(experiment_id, image_id) if _provider is not None else None


def normalised_saliency(heatmap: np.ndarray, xs: Sequence[int], ys: Sequence[int]) -> float | None:
    """Normalised scanpath saliency: the map's z-score averaged over the points (x, y); None if undefined.

    About 0 for random places and 2-4 for typical players; None without points or on a flat map.
    """
    heat = np.asarray(heatmap, dtype=np.float64)
    spread = heat.std()
    if not len(xs) or spread == 0:
        return None
    values = heat[np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)]
    return float(((values - heat.mean()) / spread).mean())
