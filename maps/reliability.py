"""Split-half reliability of click maps, in pure NumPy/SciPy (SPEC §4).

For each image its participants are split at random into two halves of equal size (one
participant is left out when their number is odd), each half's map is built exactly as the
published map is (summed counts → mean → blur → min-max), and the two maps are compared by
Spearman's rank correlation over pixels and by the "AUC": the mean IoU of the two maps
thresholded at 0.05, 0.10, … 0.95. The floor pairs an image's first half with the second
half of a different, randomly chosen image. Means over iterations give the per-image values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from maps.heatmap import MapParameters, click_maps, count_histograms

THRESHOLDS = np.round(np.arange(1, 20) * 0.05, 2)  # 0.05 … 0.95
MIN_PARTICIPANTS = 4  # two per half: one participant per half is a single trail, not a map


@dataclass(frozen=True)
class SplitHalf:
    """Per-image means over iterations: the ceiling (same image) and the floor (another image)."""

    ceiling_spearman: np.ndarray
    floor_spearman: np.ndarray
    ceiling_auc: np.ndarray
    floor_auc: np.ndarray


def _ranks(maps: np.ndarray) -> np.ndarray:
    """Pixel ranks per map (ties averaged), centred and scaled to unit norm; NaN for a flat map."""
    ranks = rankdata(maps.reshape(len(maps), -1), axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ranks, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ranks / norms


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's correlation between maps a[i] and b[i] over pixels (NaN where a map is flat)."""
    return np.einsum("ij,ij->i", _ranks(a), _ranks(b))


def auc_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over THRESHOLDS of the IoU of a[i] ≥ t and b[i] ≥ t (an empty union counts as agreement)."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    ious = np.empty((len(THRESHOLDS), len(a)))
    for k, threshold in enumerate(THRESHOLDS):
        above_a, above_b = a >= threshold, b >= threshold
        inter = np.count_nonzero(above_a & above_b, axis=1)
        union = np.count_nonzero(above_a | above_b, axis=1)
        ious[k] = np.divide(inter, union, out=np.ones(len(a)), where=union > 0)
    return ious.mean(axis=0)


def _halves(owner_image: np.ndarray, n_images: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of every image's participants: each participant's half (0, 1, or -1 left out), half sizes."""
    per_image = np.bincount(owner_image, minlength=n_images)
    size = per_image // 2
    # Sorting by (image, random key) lays each image's participants out in a random order.
    order = np.lexsort((rng.random(len(owner_image)), owner_image))
    starts = np.concatenate([[0], np.cumsum(per_image)[:-1]])
    position = np.empty(len(owner_image), dtype=np.int64)
    position[order] = np.arange(len(owner_image)) - starts[owner_image[order]]
    k = size[owner_image]
    half = np.where(position < k, 0, np.where(position < 2 * k, 1, -1))
    return half, size


def split_half(
    owner_image: np.ndarray,
    click_owner: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    params: MapParameters,
    iterations: int,
    rng: np.random.Generator,
) -> SplitHalf:
    """Ceiling and floor of several images from raw clicks.

    `owner_image[p]` is the image (0 … n-1) of participant p, and `click_owner[c]` the
    participant of click c at (xs[c], ys[c]). Needs at least two images (the floor's partner
    is another of them), each with MIN_PARTICIPANTS participants or more.
    """
    owner_image, click_owner = np.asarray(owner_image, np.int64), np.asarray(click_owner, np.int64)
    n = int(owner_image.max()) + 1 if owner_image.size else 0
    if n < 2 or np.bincount(owner_image, minlength=n).min() < MIN_PARTICIPANTS:
        raise ValueError(f"need two or more images with at least {MIN_PARTICIPANTS} participants each")
    click_image = owner_image[click_owner]
    scores = np.empty((4, iterations, n))
    for t in range(iterations):
        half, size = _halves(owner_image, n, rng)
        click_half = half[click_owner]
        first, second = (
            count_histograms(
                click_image[click_half == h], xs[click_half == h], ys[click_half == h], n, params.image_size
            )
            for h in (0, 1)
        )
        maps_a, maps_b = click_maps(first, size, params), click_maps(second, size, params)
        partner = (np.arange(n) + rng.integers(1, n, size=n)) % n  # never the image itself
        ranks_a, ranks_b = _ranks(maps_a), _ranks(maps_b)
        scores[0, t] = np.einsum("ij,ij->i", ranks_a, ranks_b)
        scores[1, t] = np.einsum("ij,ij->i", ranks_a, ranks_b[partner])
        scores[2, t] = auc_rows(maps_a, maps_b)
        scores[3, t] = auc_rows(maps_a, maps_b[partner])
    return SplitHalf(*np.nanmean(scores, axis=1))


def plateau_gain(histogram: np.ndarray, params: MapParameters, iterations: int, rng: np.random.Generator) -> float:
    """How much one image's split-half Spearman still gains from its last quarter of participants.

    With P participants, halves of k = ⌊P/2⌋ are compared with halves of k' = ⌊3k/4⌋ taken as
    prefixes of the same random halves (so the two estimates are paired and their difference
    is not swamped by split noise): the gain is mean r(k) − mean r(k'). NaN when k < 2.
    """
    k = len(histogram) // 2
    smaller = (3 * k) // 4
    if k < 2 or smaller < 1:
        return float("nan")
    gains = np.empty(iterations)
    for t in range(iterations):
        order = rng.permutation(len(histogram))
        first, second = order[:k], order[k : 2 * k]
        groups = (first, second, first[:smaller], second[:smaller])
        sums = np.stack([histogram[group].sum(axis=0) for group in groups])
        maps = click_maps(sums, np.array([k, k, smaller, smaller]), params)
        r = spearman_rows(maps[[0, 2]], maps[[1, 3]])
        gains[t] = r[0] - r[1]
    return float(np.nanmean(gains))
