"""Split-half reliability of click maps, in pure NumPy/SciPy (docs/maps-and-reliability.md).

For each image its participants are split at random into two halves, each half's map is built
as the published map is (summed counts → mean → blur), and the two maps are compared by
Spearman's rank correlation over pixels and by an overlap score over thresholds; the floor
compares an image's first half with the second half of a different image. Means over
iterations give the per-image values, means over images the overall ones.

How the halves, the floor's partner and the overlap are made is a named recipe
(`RELIABILITY_RECIPES`). "lab" follows serre-lab's ceiling script (human_clickme_data_processing,
ceiling_floor_estimate.py): each half is bootstrapped back up (the first ⌊n/2⌋ participants plus
⌊n/2⌋ drawn again from them; the other ⌈n/2⌉ plus ⌊n/2⌋ drawn from them), maps are centre-cropped
to 224 before scoring, the overlap is the area under the IoU-over-thresholds curve (maps min-max
scaled with 1e-8 in the denominator, pixels strictly above each threshold 0.05, 0.10 … 0.95, an
empty union scoring 0, integrated by the trapezoid rule, so a perfect match scores 0.9), and each
image keeps one randomly drawn partner image for all of its floor splits. "clickme-v1" is what
this project computed before issue 15: halves of ⌊n/2⌋ (one participant left out when n is odd),
no crop, the mean IoU of pixels at or above each threshold with an empty union scoring 1, a new
partner every split, and images with 4 participants or more.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata

from maps.heatmap import MapParameters, click_maps, raw_maps

THRESHOLDS = np.round(np.arange(1, 20) * 0.05, 2)  # 0.05 … 0.95
MIN_PARTICIPANTS = 4  # clickme-v1's minimum: two per half; one participant per half is a single trail, not a map
HALVES = ("bootstrap", "drop-odd")
PARTNERS = ("per-image", "per-split")
OVERLAPS = {
    "iou-auc": "area under the IoU-over-thresholds curve (pixels > t for t = 0.05 … 0.95, trapezoid rule, "
    "empty union 0; a perfect match scores 0.9)",
    "mean-iou": "mean over thresholds t = 0.05 … 0.95 of the IoU of pixels ≥ t (empty union 1; a perfect match 1)",
}
# The dashboard and the manifest call the overlap by these names rather than "AUC" alone.
OVERLAP_LABELS = {"iou-auc": "IoU AUC", "mean-iou": "mean IoU"}


@dataclass(frozen=True)
class ReliabilityOptions:
    """How the split-half ceiling and floor are computed; `min_participants` None means the maps' own minimum."""

    halves: str = "bootstrap"
    partner: str = "per-image"
    overlap: str = "iou-auc"
    crop: int = 224
    min_participants: int | None = None

    def __post_init__(self) -> None:
        if self.halves not in HALVES:
            raise ValueError(f"halves must be one of {HALVES}, not {self.halves!r}")
        if self.partner not in PARTNERS:
            raise ValueError(f"partner must be one of {PARTNERS}, not {self.partner!r}")
        if self.overlap not in OVERLAPS:
            raise ValueError(f"overlap must be one of {tuple(OVERLAPS)}, not {self.overlap!r}")
        if self.crop < 0:
            raise ValueError(f"crop must be 0 (none) or a positive size, not {self.crop}")
        if self.min_participants is not None and self.min_participants < 2:
            raise ValueError(f"min_participants must be at least 2 (one per half), not {self.min_participants}")

    def needed(self, params: MapParameters) -> int:
        """The participants an image needs to be scored (the lab's min_subjects is the map's minimum)."""
        return self.min_participants if self.min_participants is not None else params.min_participants

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


RELIABILITY_RECIPES = {
    "lab": ReliabilityOptions(),
    "clickme-v1": ReliabilityOptions(
        halves="drop-odd", partner="per-split", overlap="mean-iou", crop=0, min_participants=MIN_PARTICIPANTS
    ),
}


@dataclass(frozen=True)
class SplitHalf:
    """Per-image means over iterations: the ceiling (same image) and the floor (another image).

    `*_auc` hold the recipe's overlap score (OVERLAPS): an IoU AUC for "lab", a mean IoU for "clickme-v1".
    """

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


def mean_iou_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """clickme-v1's overlap: mean over THRESHOLDS of the IoU of a[i] ≥ t and b[i] ≥ t (empty union: 1).

    The maps are taken as they are (published maps are already min-max scaled to [0, 1]).
    """
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    ious = np.empty((len(THRESHOLDS), len(a)))
    for k, threshold in enumerate(THRESHOLDS):
        above_a, above_b = a >= threshold, b >= threshold
        inter = np.count_nonzero(above_a & above_b, axis=1)
        union = np.count_nonzero(above_a | above_b, axis=1)
        ious[k] = np.divide(inter, union, out=np.ones(len(a)), where=union > 0)
    return ious.mean(axis=0)


def _lab_scaled(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=1, keepdims=True)
    return (maps - low) / (maps.max(axis=1, keepdims=True) - low + 1e-8)


def iou_auc_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The lab's overlap: area under the IoU curve of a[i] > t and b[i] > t over THRESHOLDS (trapezoid rule).

    Each map is min-max scaled first, with 1e-8 added to its range as the lab's script does; an
    empty union scores 0, so two flat maps score 0 and a perfect match 0.9 (the curve spans 0.05–0.95).
    """
    a, b = _lab_scaled(a.reshape(len(a), -1)), _lab_scaled(b.reshape(len(b), -1))
    ious = np.empty((len(THRESHOLDS), len(a)))
    for k, threshold in enumerate(THRESHOLDS):
        above_a, above_b = a > threshold, b > threshold
        inter = np.count_nonzero(above_a & above_b, axis=1)
        union = np.count_nonzero(above_a | above_b, axis=1)
        ious[k] = np.divide(inter, union, out=np.zeros(len(a)), where=union > 0)
    return np.trapezoid(ious, x=THRESHOLDS, axis=0)


def centre_crop(maps: np.ndarray, size: int) -> np.ndarray:
    """The central size × size window of maps (N, H, W), placed as torchvision's center_crop places it."""
    height, width = maps.shape[-2:]
    if size <= 0 or (size >= height and size >= width):
        return maps
    top, left = round((height - size) / 2), round((width - size) / 2)
    return maps[..., top : top + size, left : left + size]


def _halves(owner_image: np.ndarray, n_images: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of every image's participants: each participant's position in its image's random order."""
    per_image = np.bincount(owner_image, minlength=n_images)
    # Sorting by (image, random key) lays each image's participants out in a random order.
    order = np.lexsort((rng.random(len(owner_image)), owner_image))
    starts = np.concatenate([[0], np.cumsum(per_image)[:-1]])
    position = np.empty(len(owner_image), dtype=np.int64)
    position[order] = np.arange(len(owner_image)) - starts[owner_image[order]]
    return position, per_image


def _weights(
    owner_image: np.ndarray, n_images: int, options: ReliabilityOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """How many times each participant enters each half (2, P) and each half's total per image (2, N).

    drop-odd: the first ⌊n/2⌋ of the random order make one half, the next ⌊n/2⌋ the other.
    bootstrap (the lab): the first ⌊n/2⌋ plus ⌊n/2⌋ draws with replacement from them; the other
    ⌈n/2⌉ plus ⌊n/2⌋ draws with replacement from those.
    """
    position, per_image = _halves(owner_image, n_images, rng)
    k = (per_image // 2)[owner_image]
    weights = np.zeros((2, len(owner_image)), dtype=np.int64)
    if options.halves == "drop-odd":
        weights[0] = position < k
        weights[1] = (position >= k) & (position < 2 * k)
        size = per_image // 2
        return weights, np.stack([size, size])
    weights[0] = position < k
    weights[1] = position >= k
    # Participant p of image i sits at position[p] of its image's order; a draw picks a position.
    by_slot = np.full((n_images, int(per_image.max(initial=0))), -1, dtype=np.int64)
    by_slot[owner_image, position] = np.arange(len(owner_image))
    half = per_image // 2
    for image in range(n_images):
        k_i, n_i = int(half[image]), int(per_image[image])
        if k_i == 0:
            continue
        first = by_slot[image, rng.integers(0, k_i, size=k_i)]
        second = by_slot[image, rng.integers(k_i, n_i, size=k_i)]
        np.add.at(weights[0], first, 1)
        np.add.at(weights[1], second, 1)
    return weights, np.stack([2 * half, per_image])


def _weighted_histograms(
    click_image: np.ndarray, weights: np.ndarray, xs: np.ndarray, ys: np.ndarray, n_images: int, size: int
) -> np.ndarray:
    """Each image's summed bubble counts, every click counted as many times as its participant was drawn."""
    flat = (click_image * size + ys) * size + xs
    sums = np.bincount(flat, weights=weights, minlength=n_images * size * size)
    return np.rint(sums).astype(np.int64).reshape(n_images, size, size)  # integer weights: exact


def _overlap(options: ReliabilityOptions, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return iou_auc_rows(a, b) if options.overlap == "iou-auc" else mean_iou_rows(a, b)


def split_half(
    owner_image: np.ndarray,
    click_owner: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    params: MapParameters,
    iterations: int,
    rng: np.random.Generator,
    options: ReliabilityOptions | None = None,
    *,
    scored: np.ndarray | None = None,
    partners: np.ndarray | None = None,
) -> SplitHalf:
    """Ceiling and floor of several images from raw clicks, by the recipe in `options` (default: the lab's).

    `owner_image[p]` is the image (0 … n-1) of participant p, and `click_owner[c]` the
    participant of click c at (xs[c], ys[c]). Needs at least two images (the floor's partner
    is another of them), each with `options.needed(params)` participants or more.

    `scored` picks the images to score (default all; the results follow its order), and
    `partners[k]` the floor's partner image of `scored[k]` (for the "per-image" partner; default:
    drawn here first, `(i + rng.integers(1, n, n)) % n` over all n images, then kept for every
    split). Images that are only partners give their second halves to the floor.
    """
    options = options or RELIABILITY_RECIPES["lab"]
    owner_image, click_owner = np.asarray(owner_image, np.int64), np.asarray(click_owner, np.int64)
    xs, ys = np.asarray(xs, np.int64), np.asarray(ys, np.int64)
    n = int(owner_image.max()) + 1 if owner_image.size else 0
    needed = options.needed(params)
    if n < 2 or np.bincount(owner_image, minlength=n).min() < needed:
        raise ValueError(f"need two or more images with at least {needed} participants each")
    scored = np.arange(n) if scored is None else np.asarray(scored, np.int64)
    # The lab draws each image's partner once, before its splits; clickme-v1 drew one per split.
    if partners is None:
        fixed_partner = ((np.arange(n) + rng.integers(1, n, size=n)) % n)[scored]  # never the image itself
    else:
        fixed_partner = np.asarray(partners, np.int64)
        if fixed_partner.shape != scored.shape or (fixed_partner == scored).any():
            raise ValueError("each scored image needs one partner, another image")
    click_image = owner_image[click_owner]
    scores = np.empty((4, iterations, len(scored)))
    for t in range(iterations):
        weights, totals = _weights(owner_image, n, options, rng)
        first, second = (
            _weighted_histograms(click_image, weights[h][click_owner], xs, ys, n, params.image_size) for h in (0, 1)
        )
        build = raw_maps if options.overlap == "iou-auc" else click_maps  # the lab scores its unscaled blurred means
        maps_a = centre_crop(build(first[scored], totals[0][scored], params), options.crop)
        maps_b = centre_crop(build(second, totals[1], params), options.crop)
        partner = fixed_partner
        if options.partner == "per-split":
            partner = (scored + rng.integers(1, n, size=len(scored))) % n
        ranks_a, ranks_b = _ranks(maps_a), _ranks(maps_b)
        scores[0, t] = np.einsum("ij,ij->i", ranks_a, ranks_b[scored])
        scores[1, t] = np.einsum("ij,ij->i", ranks_a, ranks_b[partner])
        scores[2, t] = _overlap(options, maps_a, maps_b[scored])
        scores[3, t] = _overlap(options, maps_a, maps_b[partner])
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
