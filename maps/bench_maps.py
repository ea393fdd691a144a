"""Simulated clicks on the demo set, and the benchmark of vectorised maps against the lab's per-click way.

The clicks are painted on each demo image's object mask by the game's own simulated players
(docs/architecture.md, "Simulated players and demo data"), so tests of reliability and the
benchmark see trails like the ones played.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.ndimage import convolve

from maps.heatmap import MapParameters, click_maps, count_histograms, kernel

SIZE = 256


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
    from model_server import demo_data

    per_class = -(-n_images // len(demo_data.CLASSES))
    samples = demo_data.generate(n_per_class=per_class, seed=seed, split="test")
    return np.stack([sample.mask for _, sample in zip(range(n_images), samples, strict=False)])


def simulate(masks: np.ndarray, participants: int, clicks: int = 60, seed: int = 0) -> SimulatedClicks:
    """`participants` simulated players per image, each painting about `clicks` bubbles.

    Each trail is painted by the game's simulated player (games.simulation.paint: a pointer
    touring the object with human-like speed, tremor, lifts and off-object aims) and cut where
    the partner would have recognised the image: after a normally distributed number of
    bubbles around `clicks` (σ = clicks / 3, at least 10).
    """
    from games.simulation import Rules, paint

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


def vectorised_maps(sim: SimulatedClicks, params: MapParameters, chunk: int = 64) -> np.ndarray:
    """All images' maps the way the services build them: one histogram pass, blurred in chunks."""
    participants = np.bincount(sim.owner_image)
    sums = count_histograms(sim.owner_image[sim.click_owner], sim.xs, sim.ys, sim.n_images, params.image_size)
    return np.concatenate(
        [click_maps(sums[i : i + chunk], participants[i : i + chunk], params) for i in range(0, len(sums), chunk)]
    )


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


def run(images: int = 200, participants: int = 10, clicks: int = 60, reference_images: int = 2, out=print) -> dict:
    """Time both ways on the same simulated clicks and print a table; returns the numbers."""
    params = MapParameters()
    sim = simulate(demo_masks(images), participants, clicks)
    start = time.perf_counter()
    maps = vectorised_maps(sim, params)
    vectorised_s = time.perf_counter() - start
    start = time.perf_counter()
    worst = 0.0
    for image in range(reference_images):
        chosen = sim.owner_image[sim.click_owner] == image
        reference = per_click_map(sim.xs[chosen], sim.ys[chosen], sim.click_owner[chosen], params)
        worst = max(worst, float(np.abs(reference - maps[image]).max()))
    reference_s = time.perf_counter() - start
    vectorised_rate, reference_rate = images / vectorised_s, reference_images / reference_s
    out(f"{len(sim.xs)} clicks: {images} images × {participants} participants × ~{clicks} clicks; disk 21, 2 passes")
    out(f"{'path':<34}{'maps':>6}{'seconds':>10}{'maps/s':>10}")
    out(f"{'vectorised (histogram, blur once)':<34}{images:>6}{vectorised_s:>10.3f}{vectorised_rate:>10.1f}")
    out(f"{'per-click blurring (lab)':<34}{reference_images:>6}{reference_s:>10.3f}{reference_rate:>10.2f}")
    out(f"speed-up: {vectorised_rate / reference_rate:.0f}× (goal ≥ 20×); largest difference {worst:.1e}")
    return {"vectorised_maps_per_s": vectorised_rate, "reference_maps_per_s": reference_rate, "max_abs_diff": worst}
