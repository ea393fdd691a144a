"""maps.heatmap as pure functions: the vectorised maps equal the lab's per-click way, exactly enough."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d

from devtools.clicks import per_click_map
from maps.heatmap import MapParameters, click_map, click_maps, count_histograms, disk_kernel, kernel

SMALL = 64  # the brute force convolves whole images per click: a small image keeps it fast


def brute_force(xs, ys, owners, params: MapParameters) -> np.ndarray:
    """The lab's way on whole images: each click's impulse blurred on its own, summed per participant, averaged."""
    weights, passes = kernel(params), params.passes if params.blur == "disk" else 1
    per_participant = []
    for owner in np.unique(owners):
        own = np.zeros((params.image_size, params.image_size))
        for x, y in zip(xs[owners == owner], ys[owners == owner], strict=True):
            impulse = np.zeros_like(own)
            impulse[y, x] = 1.0
            for _ in range(passes):
                impulse = convolve2d(impulse, weights, mode="same", boundary="fill")
            own += impulse
        per_participant.append(own)
    mean = np.mean(per_participant, axis=0)
    return (mean - mean.min()) / (mean.max() - mean.min())


def clicks(rng: np.random.Generator, participants: int, per: int, size: int):
    """Random clicks, a third of them hugging the border, where zero padding matters."""
    owners = np.repeat(np.arange(participants), per)
    xs, ys = rng.integers(0, size, len(owners)), rng.integers(0, size, len(owners))
    edge = rng.random(len(owners)) < 0.33
    xs[edge] = rng.choice([0, 1, size - 2, size - 1], int(edge.sum()))
    return owners, xs, ys


@pytest.mark.parametrize(
    "params",
    [
        MapParameters(image_size=SMALL),
        MapParameters(image_size=SMALL, diameter=9, passes=3),
        MapParameters(image_size=SMALL, blur="gaussian"),
        MapParameters(image_size=SMALL, blur="gaussian", gaussian_size=11, gaussian_sigma=2.5),
    ],
    ids=["disk21x2", "disk9x3", "gauss21", "gauss11"],
)
def test_map_equals_per_click_reference(params: MapParameters) -> None:
    owners, xs, ys = clicks(np.random.default_rng(1), participants=5, per=12, size=SMALL)
    sums = count_histograms(np.zeros_like(owners), xs, ys, 1, SMALL)[0]
    result = click_map(sums, 5, params)
    assert result.dtype == np.float32 and result.shape == (SMALL, SMALL)
    np.testing.assert_allclose(result, brute_force(xs, ys, owners, params), atol=1e-6, rtol=0)
    assert result.min() == 0.0 and result.max() == 1.0


@pytest.mark.parametrize("blur", ["disk", "gaussian"])
def test_full_size_map_equals_windowed_per_click_reference(blur: str) -> None:
    """The benchmark's reference (each click blurred on its reachable window) agrees at 256 too."""
    params = MapParameters(blur=blur)
    owners, xs, ys = clicks(np.random.default_rng(2), participants=3, per=15, size=256)
    sums = count_histograms(np.zeros_like(owners), xs, ys, 1)[0]
    np.testing.assert_allclose(click_map(sums, 3, params), per_click_map(xs, ys, owners, params), atol=1e-6, rtol=0)


@pytest.mark.parametrize("blur", ["disk", "gaussian"])
def test_batch_equals_one_image_at_a_time_bit_for_bit(blur: str) -> None:
    rng = np.random.default_rng(3)
    sums = rng.poisson(0.02, size=(7, 256, 256))
    sums[3] = 0  # an image without clicks
    participants = rng.integers(1, 12, size=7)
    params = MapParameters(blur=blur)
    batch = click_maps(sums, participants, params)
    for i in range(7):
        assert np.array_equal(batch[i], click_map(sums[i], participants[i], params))
    assert np.array_equal(click_maps(sums[::-1], participants[::-1], params), batch[::-1])


def test_large_counts_take_the_int64_path_with_the_same_map() -> None:
    sums = np.random.default_rng(4).poisson(0.05, size=(2, 256, 256))
    small = click_maps(sums, np.array([3, 3]), MapParameters())
    huge = click_maps(sums * 100_000, np.array([300_000, 300_000]), MapParameters())  # overflows int32 if kept
    np.testing.assert_allclose(huge, small, atol=1e-7, rtol=0)


def test_no_clicks_or_no_participants_give_a_zero_map() -> None:
    zeros = np.zeros((2, 256, 256), dtype=np.int64)
    assert not click_maps(zeros, np.array([0, 4]), MapParameters()).any()


def test_count_histograms_counts_every_click_per_owner() -> None:
    owners, xs, ys = np.array([0, 0, 1, 0]), np.array([5, 5, 7, 255]), np.array([9, 9, 0, 255])
    histograms = count_histograms(owners, xs, ys, n_owners=3)
    assert histograms.shape == (3, 256, 256) and histograms.sum() == 4
    assert histograms[0, 9, 5] == 2 and histograms[1, 0, 7] == 1 and histograms[0, 255, 255] == 1
    assert not histograms[2].any()


@pytest.mark.parametrize(
    ("owners", "xs", "ys"), [([0], [256], [0]), ([0], [0], [-1]), ([2], [0], [0]), ([0, 1], [0], [0])]
)
def test_count_histograms_rejects_clicks_outside_the_image_or_owners(owners, xs, ys) -> None:
    with pytest.raises(ValueError, match="must"):
        count_histograms(np.array(owners), np.array(xs), np.array(ys), n_owners=2)


def test_disk_kernel_is_the_lab_flat_disk() -> None:
    disk = disk_kernel(21)
    assert disk.shape == (21, 21) and disk.sum() == pytest.approx(1.0)
    assert np.count_nonzero(disk) == 317 and disk[10, 0] > 0 and disk[0, 0] == 0
    assert len(np.unique(disk[disk > 0])) == 1


def test_parameters_round_trip_and_validate() -> None:
    params = MapParameters(blur="gaussian", gaussian_sigma=3.0, min_participants=8)
    assert MapParameters.from_dict({**params.as_dict(), "selection": "ignored"}) == params
    for bad in ({"blur": "box"}, {"diameter": 20}, {"gaussian_size": 0}, {"passes": 0}, {"min_participants": 0}):
        with pytest.raises(ValueError, match="must"):
            MapParameters(**bad)
