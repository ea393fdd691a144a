"""What the partner network sees: bubbles of clean pixels over a noised image (SPEC §2).

This is the one implementation used by live serving, authoritative scoring and training, so the
three agree bit for bit for the same image, bubbles and noise seed. The browser paints the same
squares with `static/games/reveal.js` (checked pixel for pixel by `tests/test_reveal_js.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model_server.canvas import IMAGE_SIZE
from model_server.seeds import noise_seed

__all__ = ["bubble_masks", "centre_crop", "noise_seed", "pad_bubbles", "reveal_batch", "unit_noise"]

CROP_SIZE = 224  # what the network sees: the centre crop of the canvas
BUBBLE_SIZE = 21  # one size for the player's view and the network's (SPEC §2)
NOISE_STD = 0.4


def pad_bubbles(
    items: Sequence[Sequence[tuple[int, int]]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack per-item bubble lists into a (B, N, 2) int32 tensor padded with -1 and (B,) counts."""
    longest = max((len(points) for points in items), default=0)
    bubbles = torch.full((len(items), max(longest, 1), 2), -1, dtype=torch.int32)
    for row, points in enumerate(items):
        if points:
            bubbles[row, : len(points)] = torch.tensor(points, dtype=torch.int32).view(-1, 2)
    counts = torch.tensor([len(points) for points in items], dtype=torch.int64)
    return bubbles, counts


def bubble_masks(
    bubbles: torch.Tensor,
    counts: torch.Tensor | None = None,
    size: int = BUBBLE_SIZE,
    image_size: int = IMAGE_SIZE,
) -> torch.Tensor:
    """Return the (B, S, S) bool masks of pixels revealed by square bubbles centred on (x, y).

    A bubble at (x, y) covers columns x - size//2 .. x - size//2 + size - 1 (rows likewise),
    clipped to the image. Only the first counts[b] bubbles of item b count; without counts, rows
    with a negative coordinate (the -1 padding) are ignored.
    """
    if size < 1:
        raise ValueError(f"bubble size must be >= 1, got {size}")
    batch, num = bubbles.shape[:2]
    device = bubbles.device
    bubbles = bubbles.to(torch.int64)
    if counts is None:
        valid = (bubbles >= 0).all(dim=-1)  # (B, N)
    else:
        valid = torch.arange(num, device=device)[None, :] < counts.to(device)[:, None]
    # A 2-D difference array: +1/-1 at the four corners of every box, then prefix sums along
    # both axes give the number of boxes over each pixel. Cost O(B*N + B*S*S), no loop per bubble.
    start = (bubbles - size // 2).clamp(0, image_size)  # (B, N, 2) as (x0, y0)
    stop = (bubbles - size // 2 + size).clamp(0, image_size)  # exclusive (x1, y1)
    x0, y0, x1, y1 = start[..., 0], start[..., 1], stop[..., 0], stop[..., 1]
    side = image_size + 1  # one extra row and column hold the closing corners
    top = torch.arange(batch, device=device)[:, None] * side * side + y0 * side  # (B, N)
    bottom = top + (y1 - y0) * side
    corners = torch.stack([top + x0, top + x1, bottom + x0, bottom + x1], dim=-1)  # (B, N, 4)
    # int16 counts (a pixel is under at most N boxes) make the two cumsums 5x faster than int32.
    dtype = torch.int16 if num < 2**15 else torch.int32
    signs = torch.tensor([1, -1, -1, 1], dtype=dtype, device=device)
    weights = valid[..., None].to(dtype) * signs  # (B, N, 4); padding adds zeros
    diff = torch.zeros(batch * side * side, dtype=dtype, device=device)
    diff.scatter_add_(0, corners.reshape(-1), weights.reshape(-1))
    cover = diff.view(batch, side, side).cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
    return cover[:, :image_size, :image_size] > 0


def centre_crop(tensor: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Return the centre size x size crop of the last two dimensions (a view, no copy)."""
    height, width = tensor.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return tensor[..., top : top + size, left : left + size]


def unit_noise(seeds: Sequence[int] | torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Return (B, 3, size, size) standard normal noise on the CPU, one stream per seed."""
    # One CPU generator per item, not one for the batch: an item's noise then depends only on its
    # own seed, not on which other requests it was batched with, and the CPU stream is the same
    # whether the model later runs on CPU or GPU. Cost: about 0.55 ms per item on one core, all of it
    # in the mt19937 draws (uniform_ costs as much as normal_); a counter-based hash written in torch
    # ops, or numpy's PCG64/SFC64 generators, measured slower on CPU.
    seeds = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
    noise = torch.empty(len(seeds), 3, size, size)
    generator = torch.Generator()
    for row, seed in enumerate(seeds):
        generator.manual_seed(int(seed))
        noise[row].normal_(generator=generator)
    return noise


def reveal_batch(
    images: torch.Tensor,
    bubbles: torch.Tensor,
    counts: torch.Tensor | None,
    seeds: Sequence[int] | torch.Tensor,
    *,
    size: int = BUBBLE_SIZE,
    noise_std: float = NOISE_STD,
) -> torch.Tensor:
    """Render what the partner sees: (B, 3, 224, 224) floats in [0, 1] on the images' device.

    Args:
        images: (B, 3, S, S) uint8 pixels or floats in [0, 1], S = 256 in the game.
        bubbles: (B, N, 2) integer (x, y) centres in image pixels, padded with -1.
        counts: (B,) number of valid bubbles per item, or None to rely on the -1 padding.
        seeds: (B,) noise seeds, normally from `noise_seed(round_id, query_index)`.
    """
    device = images.device
    crop = centre_crop(images)  # crop before converting: 23% fewer pixels to convert
    clean = crop.float().div_(255.0) if crop.dtype == torch.uint8 else crop.float()
    masks = centre_crop(bubble_masks(bubbles.to(device), counts, size, images.shape[-1]))
    noisy = unit_noise(seeds, clean.shape[-1]).to(device, non_blocking=True)
    # clip(img + N(0, std) - 0.5, 0, 1): the -0.5 darkens hidden pixels as the original game did.
    noisy.mul_(noise_std).add_(clean).sub_(0.5).clamp_(0.0, 1.0)
    # Written into the noise buffer: a fresh 38 MB output per batch of 64 costs page faults.
    return torch.where(masks[:, None], clean, noisy, out=noisy)  # (B, 3, 224, 224)
