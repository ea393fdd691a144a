"""Tests for the partner's view: bubble masks, seeded noise and the revealed image."""

from __future__ import annotations

import random

import pytest
import torch

from model_server.reveal import (
    NOISE_FIELDS,
    PRODUCT_MAX_BUBBLES,
    bubble_masks,
    centre_crop,
    noise_bank,
    noise_offsets,
    noise_seed,
    noise_window,
    pad_bubbles,
    reveal_batch,
)

PINNED_OFFSETS = [[-181, -149, -138, -127], [-206, -149, -58, -178], [-116, -346, -80, -198]]


def reference_mask(points: list[tuple[int, int]], size: int, image_size: int = 256) -> torch.Tensor:
    """Paint squares pixel by pixel: the bubble rule written as plainly as possible."""
    mask = torch.zeros(image_size, image_size, dtype=torch.bool)
    for x, y in points:
        for row in range(y - size // 2, y - size // 2 + size):
            for col in range(x - size // 2, x - size // 2 + size):
                if 0 <= row < image_size and 0 <= col < image_size:
                    mask[row, col] = True
    return mask


def random_bubbles(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """Draw bubbles with edges, corners and overlapping neighbours well represented."""
    edges = [0, 1, 2, 9, 10, 11, 244, 245, 253, 254, 255]
    points = []
    for _ in range(count):
        x = rng.choice(edges) if rng.random() < 0.3 else rng.randrange(256)
        y = rng.choice(edges) if rng.random() < 0.3 else rng.randrange(256)
        points.append((x, y))
        if rng.random() < 0.3:  # a near neighbour, as painting produces
            points.append((min(x + rng.randrange(8), 255), max(y - rng.randrange(8), 0)))
    return points


@pytest.mark.parametrize("size", [1, 2, 14, 21])
@pytest.mark.parametrize("most", [30, 150], ids=["few bubbles: matrix product", "many bubbles: prefix sums"])
def test_masks_match_the_pixel_by_pixel_rule(size: int, most: int) -> None:
    rng = random.Random(size)
    items = [random_bubbles(rng, n) for n in (0, 1, 3, 12, most)]
    items.append([(0, 0), (255, 255), (0, 255), (255, 0), (128, 128), (128, 128)])
    bubbles, counts = pad_bubbles(items)
    assert (bubbles.shape[1] <= PRODUCT_MAX_BUBBLES) == (most == 30)
    masks = bubble_masks(bubbles, counts, size)
    crops = bubble_masks(bubbles, counts, size, crop=224)
    for row, points in enumerate(items):
        assert torch.equal(masks[row], reference_mask(points, size)), (size, row)
        assert torch.equal(crops[row], centre_crop(reference_mask(points, size))), (size, row)


def test_negative_padding_is_ignored_without_counts() -> None:
    bubbles, counts = pad_bubbles([[(5, 5)], [(100, 30), (7, 250)]])
    assert torch.equal(bubble_masks(bubbles, None, 21), bubble_masks(bubbles, counts, 21))


def test_even_size_extends_one_pixel_more_left_and_up() -> None:
    mask = bubble_masks(torch.tensor([[[10, 20]]]), None, 14)[0]
    rows, cols = mask.nonzero(as_tuple=True)
    assert (cols.min().item(), cols.max().item()) == (3, 16)
    assert (rows.min().item(), rows.max().item()) == (13, 26)


def test_noise_seed_is_stable_and_spread() -> None:
    # Pinned values: a change here would silently re-score every stored round differently.
    assert noise_seed(0, 0) == 0x53836E97A68CBF37
    assert noise_seed(12345, 3) == noise_seed(12345, 3)
    seeds = {noise_seed(r, q) for r in range(50) for q in range(14)}
    assert len(seeds) == 700
    assert all(0 <= seed < 2**63 for seed in seeds)


def test_noise_depends_only_on_the_items_own_seed() -> None:
    alone = noise_offsets([7])
    batched = noise_offsets([3, 7, 11])
    assert torch.equal(alone[0], batched[1])
    assert not torch.equal(batched[0], batched[2])
    # Consecutive seeds (training passes counters) land on unrelated windows.
    windows = {noise_window(seed) for seed in range(2000)}
    assert len(windows) > 1990  # of 810,000: a few birthday collisions are expected
    assert {field for field, _, _ in windows} == set(range(NOISE_FIELDS))


def test_the_noise_bank_is_the_games_hiding_on_the_8_bit_grid() -> None:
    # round(255 * (0.4 * z - 0.5)) for z ~ N(0, 1): mean -127.5, standard deviation 102.
    bank = noise_bank().float()
    assert bank.shape == (NOISE_FIELDS, 3, 448, 448)
    assert abs(bank.mean().item() + 127.5) < 0.5
    assert abs(bank.std().item() - 0.4 * 255) < 0.5
    # Fixed by its seed: the same bank in every process (a change would re-score stored rounds).
    assert noise_offsets([noise_seed(0, 0)])[0, :, 0, :4].tolist() == PINNED_OFFSETS


def test_reveal_shows_clean_pixels_in_bubbles_and_noise_elsewhere() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8, generator=gen)
    bubbles, counts = pad_bubbles([[(128, 128), (20, 30)], [(250, 5)]])
    seeds = [noise_seed(1, 0), noise_seed(1, 1)]
    seen = reveal_batch(images, bubbles, counts, seeds)
    assert seen.shape == (2, 3, 224, 224)
    assert seen.dtype == torch.float32
    assert seen.min().item() >= 0.0
    assert seen.max().item() <= 1.0
    clean = centre_crop(images).float() / 255
    masks = centre_crop(bubble_masks(bubbles, counts, 21))[:, None].expand_as(seen)
    assert torch.equal(seen[masks], clean[masks])
    expected = (centre_crop(images).to(torch.int16) + noise_offsets(seeds)).clamp(0, 255).float() / 255
    assert torch.equal(seen[~masks], expected[~masks])
    # The float formula of the original game, to within the 8-bit grid.
    noise = (noise_offsets(seeds).float() + 127.5) / (255 * 0.4)
    assert torch.allclose(seen[~masks], (clean + 0.4 * noise - 0.5).clamp(0, 1)[~masks], atol=0.5 / 255 + 1e-6)
    assert torch.equal(seen, reveal_batch(images, bubbles, counts, seeds))


def test_reveal_writes_into_a_given_buffer_in_any_layout() -> None:
    images = torch.randint(0, 256, (3, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[(10, 10)], [], [(200, 100), (90, 90)]])
    buffer = torch.empty(3, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    seen = reveal_batch(images, bubbles, counts, [1, 2, 3], out=buffer)
    assert seen.data_ptr() == buffer.data_ptr() and seen.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(seen, reveal_batch(images, bubbles, counts, [1, 2, 3]))
    # A smaller batch after a larger one (the per-thread scratch is reused) is still right.
    assert torch.equal(reveal_batch(images[1:], bubbles[1:], counts[1:], [2, 3]), seen[1:])


def test_float_images_are_taken_to_the_nearest_8_bit_value() -> None:
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[(50, 50)], [(100, 120)]])
    as_floats = reveal_batch(images.float() / 255, bubbles, counts, [4, 5])
    assert torch.equal(as_floats, reveal_batch(images, bubbles, counts, [4, 5]))


def test_a_seed_is_needed_per_image() -> None:
    images = torch.zeros(2, 3, 256, 256, dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[], []])
    with pytest.raises(ValueError, match="1 noise seeds for 2 images"):
        reveal_batch(images, bubbles, counts, [1])


def test_reveal_accepts_float_images_and_no_bubbles() -> None:
    images = torch.full((1, 3, 256, 256), 0.5)
    bubbles, counts = pad_bubbles([[]])
    seen = reveal_batch(images, bubbles, counts, [5], size=21)
    assert seen.shape == (1, 3, 224, 224)
    assert abs(seen.mean().item() - 0.16) < 0.02  # clip(N(0, 0.4), 0, 1) has mean about 0.16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_reveal_on_the_gpu_matches_the_cpu() -> None:
    images = torch.randint(0, 256, (3, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[(0, 0), (128, 140)], [(255, 3)], []])
    seeds = [noise_seed(9, query) for query in range(3)]
    on_cpu = reveal_batch(images, bubbles, counts, seeds)
    on_gpu = reveal_batch(images.cuda(), bubbles.cuda(), counts.cuda(), seeds)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(bubble_masks(bubbles.cuda(), counts.cuda()).cpu(), bubble_masks(bubbles, counts))
    assert torch.equal(on_gpu.cpu(), on_cpu)  # integer arithmetic up to one division by 255


def test_an_8_bit_buffer_receives_the_pixels_the_network_accepts_as_they_are() -> None:
    from model_server.network import gala_small

    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[(100, 100)], [(30, 200), (31, 201)]])
    floats = reveal_batch(images, bubbles, counts, [8, 9])
    pixels = reveal_batch(images, bubbles, counts, [8, 9], out=torch.empty(2, 3, 224, 224, dtype=torch.uint8))
    assert torch.equal(pixels.float() / 255, floats)
    model = gala_small().eval()
    with torch.inference_mode():
        assert torch.allclose(model(pixels), model(floats), atol=1e-5)
