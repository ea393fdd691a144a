"""Simulated clicks on the demo set, and the lab's per-click way of making a map from them.

The clicks are painted on each demo image's object mask by the game's own simulated players
(docs/architecture.md, "Simulated players and demo data"), so tests of reliability and the maps
benchmark (bench/maps.py) see trails like the ones played. `per_click_map` is the lab's reference
that the vectorised maps (maps.heatmap) are checked and timed against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.ndimage import convolve

from devtools.simulation import Rules, paint
from maps.heatmap import MapParameters, kernel
from model_server import demo_data


@dataclass(frozen=True)
class SimulatedClicks:
    """Clicks of several images: participant p saw image owner_image[p]; click c is (xs[c], ys[c]) by click_owner[c]."""

    owner_image: np.ndarray
    click_owner: np.ndarray
    xs: np.ndarray
    ys: np.ndarray

    @property
    def n_images(self) -> int:
        return int(self.owner_image.max()) + 1

    def for_images(self, count: int) -> SimulatedClicks:
        """The clicks of the first `count` images only."""
        participants = np.flatnonzero(self.owner_image < count)
        keep = np.isin(self.click_owner, participants)
        return SimulatedClicks(self.owner_image[participants], self.click_owner[keep], self.xs[keep], self.ys[keep])


@cache
def demo_masks(n_images: int, seed: int = 0) -> np.ndarray:
    """Object masks (n, 256, 256) of the first n demo images (test split, so never trained on)."""
    per_class = -(-n_images // len(demo_data.CLASSES))
    samples = demo_data.generate(n_per_class=per_class, seed=seed, split="test")
    return np.stack([sample.mask for _, sample in zip(range(n_images), samples, strict=False)])


def simulate(masks: np.ndarray, participants: int, clicks: int = 60, seed: int = 0) -> SimulatedClicks:
    """`participants` simulated players per image, each painting about `clicks` bubbles.

    Each trail is painted by the game's simulated player (devtools.simulation.paint: a pointer
    touring the object with human-like speed, tremor, lifts and off-object aims) and cut where
    the partner would have recognised the image: after a normally distributed number of
    bubbles around `clicks` (σ = clicks / 3, at least 10).
    """
    rng = np.random.default_rng(seed)
    owner_image, click_owner, xs, ys = [], [], [], []
    for image, mask in enumerate(masks):
        for _ in range(participants):
            trail = np.array(paint(mask, Rules(), rng))
            cut = int(np.clip(rng.normal(clicks, clicks / 3), 10, len(trail)))
            click_owner.append(np.full(cut, len(owner_image)))
            owner_image.append(image)
            xs.append(trail[:cut, 0])
            ys.append(trail[:cut, 1])
    return SimulatedClicks(np.array(owner_image), np.concatenate(click_owner), np.concatenate(xs), np.concatenate(ys))


def _blurred_click(x: int, y: int, weights: np.ndarray, passes: int, size: int) -> tuple[slice, slice, np.ndarray]:
    """One click blurred on its own, on the window of the image it can reach: (rows, columns, values).

    After `passes` convolutions the click reaches passes × radius pixels, so convolving only
    that window (clipped to the image, whose outside is zero) gives the full-image result.
    """
    reach = passes * (len(weights) // 2)
    rows = slice(max(0, y - reach), min(size, y + reach + 1))
    columns = slice(max(0, x - reach), min(size, x + reach + 1))
    window = np.zeros((rows.stop - rows.start, columns.stop - columns.start))
    window[y - rows.start, x - columns.start] = 1.0
    for _ in range(passes):
        window = convolve(window, weights, mode="constant", cval=0.0)
    return rows, columns, window


def per_click_map(xs: np.ndarray, ys: np.ndarray, owners: np.ndarray, params: MapParameters) -> np.ndarray:
    """The lab's way for one image: for each participant, for each click, add that click's blurred disk.

    Each click is an impulse blurred on its own (`passes` zero-padded "same" convolutions with
    the normalised kernel); participants' maps are averaged, then min-max.
    """
    weights = kernel(params)
    passes = params.passes if params.blur == "disk" else 1
    size = params.image_size
    participants = np.unique(owners)
    total = np.zeros((size, size))
    for owner in participants:
        own = np.zeros((size, size))
        for x, y in zip(xs[owners == owner], ys[owners == owner], strict=True):
            rows, columns, values = _blurred_click(int(x), int(y), weights, passes, size)
            own[rows, columns] += values
        total += own
    mean = total / len(participants)
    span = mean.max() - mean.min()
    return ((mean - mean.min()) / span if span > 0 else np.zeros_like(mean)).astype(np.float32)
