"""`manage.py bench_maps` (`make bench`): vectorised maps against the lab's per-click way, in maps per second.

The clicks and the lab's reference are devtools.clicks; this times both on the same clicks.
"""

from __future__ import annotations

import time

import numpy as np

from devtools.clicks import SimulatedClicks, demo_masks, per_click_map, simulate
from maps.heatmap import MapParameters, click_maps, count_histograms


def vectorised_maps(sim: SimulatedClicks, params: MapParameters, chunk: int = 64) -> np.ndarray:
    """All images' maps the way the services build them: one histogram pass, blurred in chunks."""
    participants = np.bincount(sim.owner_image)
    sums = count_histograms(sim.owner_image[sim.click_owner], sim.xs, sim.ys, sim.n_images, params.image_size)
    return np.concatenate(
        [click_maps(sums[i : i + chunk], participants[i : i + chunk], params) for i in range(0, len(sums), chunk)]
    )


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
