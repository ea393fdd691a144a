"""ClickMe maps from bubble centres, in pure NumPy/SciPy: counts → mean → blur → min-max (docs/maps-and-reliability.md).

Blur is linear, so a map is computed from the summed integer histogram of an image's
participants and blurred once; nothing is ever blurred click by click. The disk blur works in
exact integer arithmetic (a flat disk is a stack of horizontal runs, each a box filter made
from a cumulative sum), so a map is bit-for-bit the same however many images share the batch,
and equals the lab's float pipeline (a normalised disk kernel, zero-padded "same" convolution,
applied twice) up to float rounding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage

BLURS = ("disk", "gaussian")
# Which rounds feed a map (docs/maps-and-reliability.md): "lab" is serre-lab's order, the first
# submission per (participant, image) and then short trials dropped; "first-counting" was ours
# until issue 15, the first submission that has at least min_clicks bubbles.
SELECTIONS = {
    "lab": (
        "the first submission per participant and image among rounds that count (scored, not skipped, not "
        "invalidated, session not invalidated, participant not shadow-banned, not a pilot), dropped when it "
        "has fewer than min_clicks bubbles (serre-lab's filter_duplicate_participants, then its short-trial filter)"
    ),
    "first-counting": (
        "rounds that count (scored, not skipped, not invalidated, session not invalidated, participant not "
        "shadow-banned, not a pilot) with at least min_clicks bubbles; the first such submission per participant "
        "and image"
    ),
}
# What maps built before recipes had names recorded under "selection" (a description): the first-counting rule.
_LEGACY_SELECTION_TEXT = (
    "scored rounds that count (not invalidated, not skipped, session not invalidated, participant not "
    "shadow-banned) with at least min_clicks bubbles; the first such submission per participant and image"
)


@dataclass(frozen=True)
class MapParameters:
    """How maps are made: the selection recipe, the blur, and the minimum participants and clicks behind a map.

    `selection_recipe` names the rule that picks each participant's round (SELECTIONS). `passes`
    applies to the disk blur only (the lab applies its disk twice); the Gaussian
    (`gaussian_size` × `gaussian_size` taps, σ = `gaussian_sigma`) is applied once.
    """

    blur: str = "disk"
    diameter: int = 21
    passes: int = 2
    gaussian_size: int = 21
    gaussian_sigma: float = 5.0
    min_participants: int = 5
    min_clicks: int = 2
    image_size: int = 256
    selection_recipe: str = "lab"

    def __post_init__(self) -> None:
        if self.selection_recipe not in SELECTIONS:
            raise ValueError(f"selection_recipe must be one of {tuple(SELECTIONS)}, not {self.selection_recipe!r}")
        if self.blur not in BLURS:
            raise ValueError(f"blur must be one of {BLURS}, not {self.blur!r}")
        # Odd sizes keep the kernel centred on a pixel, so "same" convolution is unambiguous.
        if self.diameter < 1 or self.diameter % 2 == 0:
            raise ValueError(f"diameter must be a positive odd number, not {self.diameter}")
        if self.gaussian_size < 1 or self.gaussian_size % 2 == 0:
            raise ValueError(f"gaussian_size must be a positive odd number, not {self.gaussian_size}")
        if self.passes < 1 or self.gaussian_sigma <= 0 or self.image_size < 1:
            raise ValueError("passes, gaussian_sigma and image_size must be positive")
        if self.min_participants < 1 or self.min_clicks < 0:
            raise ValueError("min_participants must be positive and min_clicks non-negative")

    def as_dict(self) -> dict[str, object]:
        """The parameters as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MapParameters:
        """Parameters from a dict such as `ClickMap.parameters`, ignoring keys that are not parameters."""
        names = {field.name for field in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        if "selection_recipe" not in values and data.get("selection") == _LEGACY_SELECTION_TEXT:
            values["selection_recipe"] = "first-counting"  # built before recipes had names
        return cls(**values)


def disk_kernel(diameter: int) -> np.ndarray:
    """The lab's flat disk: pixels within (d-1)/2 of the centre, normalised to sum to 1 (float64)."""
    centre = radius = (diameter - 1) / 2
    y, x = np.mgrid[:diameter, :diameter]
    mask = (x - centre) ** 2 + (y - centre) ** 2 <= radius**2
    return mask / mask.sum()


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """A size × size Gaussian of standard deviation sigma, normalised to sum to 1 (float64)."""
    taps = _gaussian_taps(size, sigma)
    return np.outer(taps, taps)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def _disk_runs(diameter: int) -> list[tuple[int, int]]:
    """The disk as (row offset, half-width) runs, read off the same mask as `disk_kernel`."""
    mask = disk_kernel(diameter) > 0
    half = diameter // 2
    return [(row - half, int(mask[row].sum()) // 2) for row in range(diameter)]


def count_histograms(owners: np.ndarray, xs: np.ndarray, ys: np.ndarray, n_owners: int, size: int = 256) -> np.ndarray:
    """Integer bubble-centre counts per owner, shape (n_owners, size, size), indexed [owner, y, x]."""
    owners, xs, ys = (np.asarray(values, dtype=np.int64).ravel() for values in (owners, xs, ys))
    if not owners.size == xs.size == ys.size:
        raise ValueError("owners, xs and ys must have the same length")
    if owners.size and (owners.min() < 0 or owners.max() >= n_owners):
        raise ValueError(f"owner indices must lie in [0, {n_owners})")
    if xs.size and (min(xs.min(), ys.min()) < 0 or max(xs.max(), ys.max()) >= size):
        raise ValueError(f"click coordinates must lie in [0, {size})")
    flat = (owners * size + ys) * size + xs
    return np.bincount(flat, minlength=n_owners * size * size).reshape(n_owners, size, size)


def _disk_blur(sums: np.ndarray, runs: list[tuple[int, int]], passes: int, dtype: type) -> np.ndarray:
    """Unnormalised disk convolutions (`passes` of them, zero-padded "same") of integer maps (N, H, W), exact.

    One image at a time, in buffers allocated once: a pass sweeps ~13 image-sized arrays 21
    times, which stay in cache for one image but not for a batch, and fresh 256 KB arrays
    would each be page-faulted in anew (together about 3× slower per image, measured).
    """
    count, height, width = sums.shape
    reach = max(half for _, half in runs)
    halves = sorted({half for _, half in runs})
    padded = np.zeros((height, width + 2 * reach + 1), dtype=dtype)  # the zero margins are never written
    cumulative = np.empty_like(padded)
    boxes = np.empty((reach + 1, height, width), dtype=dtype)
    out = np.empty((count, height, width), dtype=dtype)
    for n in range(count):
        current = out[n]
        current[...] = sums[n]
        for _ in range(passes):
            # cumulative[:, k] sums the padded row's first k + 1 pixels, so the run of half-width
            # h centred on x is cumulative[:, x + reach + h + 1] - cumulative[:, x + reach - h].
            padded[:, reach + 1 : reach + 1 + width] = current
            np.cumsum(padded, axis=1, out=cumulative)
            for half in halves:
                np.subtract(
                    cumulative[:, reach + half + 1 : reach + half + 1 + width],
                    cumulative[:, reach - half : reach - half + width],
                    out=boxes[half],
                )
            current.fill(0)
            for offset, half in runs:
                # Output row y gathers the run of input row y + offset (the disk is symmetric).
                top, bottom = max(0, -offset), height - max(0, offset)
                current[top:bottom] += boxes[half, top + offset : bottom + offset]
    return out


def _blur(sums: np.ndarray, participants: np.ndarray, params: MapParameters) -> np.ndarray:
    """The mean map sums / participants, blurred (float64)."""
    if params.blur == "disk":
        runs = _disk_runs(params.diameter)
        area = sum(2 * half + 1 for _, half in runs)
        # Exact either way; int32 halves the memory traffic whenever no sum can overflow it.
        fits = int(sums.sum()) * area**params.passes < np.iinfo(np.int32).max
        blurred = _disk_blur(sums, runs, params.passes, np.int32 if fits else np.int64)
        # Dividing the exact integer result once gives the mean map blurred by the normalised disk.
        scale = participants.astype(np.float64) * float(area) ** params.passes
        return blurred / scale[:, None, None]
    means = sums / participants[:, None, None].astype(np.float64)
    taps = _gaussian_taps(params.gaussian_size, params.gaussian_sigma)
    # Separable: rows then columns equals the 2-D zero-padded convolution with outer(taps, taps).
    blurred = ndimage.convolve1d(means, taps, axis=1, mode="constant", cval=0.0)
    return ndimage.convolve1d(blurred, taps, axis=2, mode="constant", cval=0.0)


def raw_maps(count_sums: np.ndarray, participants: np.ndarray, params: MapParameters) -> np.ndarray:
    """Unscaled maps of N images, float64 (N, H, W): the blurred mean of participants' click counts.

    This is what serre-lab's scripts save as a clickmap (no min-max), so values, thresholds and
    losses computed on it carry over to theirs; an image with no participants gets zeros.
    """
    sums = np.asarray(count_sums)
    if sums.ndim != 3:
        raise ValueError(f"count_sums must be (N, H, W), not {sums.shape}")
    participants = np.asarray(participants, dtype=np.int64).reshape(-1)
    if participants.shape[0] != sums.shape[0]:
        raise ValueError("one participant number per image is needed")
    safe = np.maximum(participants, 1)  # no participants means no clicks: the map stays zero
    return _blur(sums, safe, params)


def click_maps(count_sums: np.ndarray, participants: np.ndarray, params: MapParameters) -> np.ndarray:
    """Maps of N images from their summed counts (N, H, W) and participant numbers (N,): float32 in [0, 1].

    Mean over participants, blur (`raw_maps`), then min-max per image; an image with no clicks
    (or no participants) gets an all-zero map.
    """
    blurred = raw_maps(count_sums, participants, params)
    low = blurred.min(axis=(1, 2), keepdims=True)
    span = blurred.max(axis=(1, 2), keepdims=True) - low
    normalised = np.divide(blurred - low, span, out=np.zeros_like(blurred), where=span > 0)
    return normalised.astype(np.float32)


def click_map(count_sum: np.ndarray, participants: int, params: MapParameters) -> np.ndarray:
    """One image's map (H, W) from its summed counts and participant number."""
    return click_maps(np.asarray(count_sum)[None], np.array([participants]), params)[0]


def kernel(params: MapParameters) -> np.ndarray:
    """The normalised 2-D kernel of one blur pass (for references and documentation)."""
    if params.blur == "disk":
        return disk_kernel(params.diameter)
    return gaussian_kernel(params.gaussian_size, params.gaussian_sigma)


# A jet-like ramp (dark blue → blue → cyan → yellow → red → dark red), the lab's usual look.
_RAMP = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], dtype=np.float64)


def overlay(image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """An RGB image (H, W, 3, uint8) with a map in [0, 1] laid over it in colour (uint8).

    Each pixel is mixed with the colour of its heat in proportion alpha × heat, so cold
    regions show the image untouched.
    """
    positions = np.linspace(0.0, 1.0, len(_RAMP))
    colour = np.stack([np.interp(heat, positions, _RAMP[:, c]) for c in range(3)], axis=-1)
    weight = (alpha * np.asarray(heat, dtype=np.float64))[..., None]
    mixed = np.asarray(image, dtype=np.float64) * (1 - weight) + colour * weight
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


__all__ = [
    "BLURS",
    "SELECTIONS",
    "MapParameters",
    "click_map",
    "click_maps",
    "count_histograms",
    "disk_kernel",
    "gaussian_kernel",
    "kernel",
    "overlay",
    "raw_maps",
]
