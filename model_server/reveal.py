"""What the partner network sees: bubbles of clean pixels over a noised image (docs/game-api.md, "Painting").

This is the one implementation used by live serving, authoritative scoring and training, so the
three agree bit for bit for the same image, bubbles and noise seed. The browser paints the same
squares with `static/games/reveal.js` (checked pixel for pixel by `tests/test_reveal_js.py`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import torch

from model_server.canvas import IMAGE_SIZE
from model_server.seeds import noise_seed, splitmix64

__all__ = [
    "bubble_masks",
    "centre_crop",
    "noise_bank",
    "noise_offsets",
    "noise_seed",
    "noise_window",
    "pad_bubbles",
    "reveal_batch",
]

CROP_SIZE = 224  # what the network sees: the centre crop of the canvas
BUBBLE_SIZE = 21  # one size for the player's view and the network's
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
    crop: int | None = None,
) -> torch.Tensor:
    """Return the (B, S, S) bool masks of pixels revealed by square bubbles centred on (x, y).

    A bubble at (x, y) covers columns x - size//2 .. x - size//2 + size - 1 (rows likewise),
    clipped to the image. Only the first counts[b] bubbles of item b count; without counts, rows
    with a negative coordinate (the -1 padding) are ignored. With `crop`, only the centre
    crop x crop of each mask is returned (S = crop), which is all the partner sees.
    """
    if size < 1:
        raise ValueError(f"bubble size must be >= 1, got {size}")
    num = bubbles.shape[1]
    device = bubbles.device
    bubbles = bubbles.to(torch.int64)
    if counts is None:
        valid = (bubbles >= 0).all(dim=-1)  # (B, N)
    else:
        valid = torch.arange(num, device=device)[None, :] < counts.to(device)[:, None]
    first = bubbles - size // 2  # (B, N, 2): the first covered column and row of each box
    if num <= PRODUCT_MAX_BUBBLES:
        return _masks_by_product(first, valid, size, image_size, crop)
    masks = _masks_by_prefix_sums(first, valid, size, image_size)
    return centre_crop(masks, crop) if crop is not None else masks


# Below this many bubbles per item, one small matrix product per item beats the prefix sums
# (measured on CPU: 0.08 against 0.13-0.18 ms per item at 30 bubbles; even at 100).
PRODUCT_MAX_BUBBLES = 64


def _masks_by_product(
    first: torch.Tensor, valid: torch.Tensor, size: int, image_size: int, crop: int | None
) -> torch.Tensor:
    """A pixel (row, col) is covered when some box spans both its row and its column: with
    rows (B, H, N) and cols (B, N, W) 0/1 matrices of "box n spans it", covered = rows @ cols > 0."""
    extent = image_size if crop is None else crop
    grid = torch.arange(extent, device=first.device) + (image_size - extent) // 2
    x0, y0 = first[..., 0], first[..., 1]
    in_rows = (
        (grid[None, :, None] >= y0[:, None, :]) & (grid[None, :, None] < y0[:, None, :] + size) & valid[:, None, :]
    )
    in_cols = (grid[None, None, :] >= x0[..., None]) & (grid[None, None, :] < x0[..., None] + size)
    # Exact in float32 (sums of at most N ones); under bf16 autocast a positive sum stays positive.
    return torch.bmm(in_rows.float(), in_cols.float()) > 0


def _masks_by_prefix_sums(first: torch.Tensor, valid: torch.Tensor, size: int, image_size: int) -> torch.Tensor:
    """A 2-D difference array: +1/-1 at the four corners of every box, then prefix sums along
    both axes give the number of boxes over each pixel. Cost O(B*N + B*S*S), no loop per bubble."""
    batch, num = first.shape[:2]
    device = first.device
    start = first.clamp(0, image_size)  # (B, N, 2) as (x0, y0)
    stop = (first + size).clamp(0, image_size)  # exclusive (x1, y1)
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


# The noise of hidden pixels comes from a fixed bank of Gaussian fields, and each query reads a
# 224 x 224 window of one field chosen by its seed. Drawing fresh noise per query (one mt19937
# stream per item, so an item's noise did not depend on its batch) cost about 0.55 ms per item on
# one core, a third of the demo partner's forward pass, and capped the server well below the
# network's own throughput; a window costs one small integer add. 16 fields x 224 x 224 offsets
# give 800,000 different windows, each pixel still N(0, std): nothing for a network to memorise.
NOISE_FIELDS = 16
NOISE_BANK_SEED = 2018
_scratch = threading.local()


@functools.cache
def noise_bank(noise_std: float = NOISE_STD, device: str = "cpu") -> torch.Tensor:
    """Return the (K, 3, 448, 448) int16 bank of what hiding adds to an 8-bit pixel.

    Each value is round(255 * (noise_std * z - 0.5)) for z ~ N(0, 1): clip(img + N(0, std) - 0.5,
    0, 1), the original game's hiding, computed on the 0..255 grid the browser also draws on.
    Drawn once on the CPU from a fixed seed, so every process, machine and device has the same bank.
    """
    generator = torch.Generator().manual_seed(NOISE_BANK_SEED)
    side = 2 * CROP_SIZE
    normal = torch.randn(NOISE_FIELDS, 3, side, side, generator=generator)
    return normal.mul_(255.0 * noise_std).sub_(127.5).round_().to(torch.int16).to(device)


def noise_window(seed: int, size: int = CROP_SIZE) -> tuple[int, int, int]:
    """Return (field, top, left) of the seed's size x size window in the noise bank: from the seed alone."""
    mixed = splitmix64(int(seed))  # training passes plain counters; spread them over the bank
    field, mixed = mixed % NOISE_FIELDS, mixed // NOISE_FIELDS
    span = 2 * CROP_SIZE - size + 1
    return field, mixed % span, (mixed // span) % span


def noise_offsets(
    seeds: Sequence[int] | torch.Tensor, noise_std: float = NOISE_STD, size: int = CROP_SIZE
) -> torch.Tensor:
    """Return the (B, 3, size, size) int16 offsets hiding adds to each item's 8-bit pixels (for tests and plots)."""
    seeds = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
    bank = noise_bank(noise_std)
    return torch.stack([_window(bank, seed, size) for seed in seeds]) if seeds else torch.empty(0, 3, size, size)


def _window(bank: torch.Tensor, seed: int, size: int) -> torch.Tensor:
    field, top, left = noise_window(seed, size)
    return bank[field, :, top : top + size, left : left + size]


def thread_buffer(
    name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, *, channels_last: bool = False
) -> torch.Tensor:
    """This thread's buffer `name` of at least shape[0] rows, reused across calls (contents undefined).

    A fresh 10-20 MB tensor per batch comes straight from mmap, and its page faults cost as much
    as the arithmetic on it. Safe for a buffer that its caller has finished with before the same
    thread asks for it again (one batch at a time per thread).
    """
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    # A buffer made under inference mode cannot be written outside it (training's evaluation
    # renders reveals under inference mode, its training steps outside): one buffer for each.
    key = (name, shape[1:], dtype, str(device), channels_last, torch.is_inference_mode_enabled())
    buffer = buffers.get(key)
    if buffer is None or buffer.shape[0] < shape[0]:
        buffer = torch.empty(shape, dtype=dtype, device=device)
        buffer = buffers[key] = buffer.contiguous(memory_format=torch.channels_last) if channels_last else buffer
    return buffer[: shape[0]]


def reveal_batch(
    images: torch.Tensor,
    bubbles: torch.Tensor,
    counts: torch.Tensor | None,
    seeds: Sequence[int] | torch.Tensor,
    *,
    size: int = BUBBLE_SIZE,
    noise_std: float = NOISE_STD,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render what the partner sees: (B, 3, 224, 224) floats in [0, 1] on the images' device.

    Args:
        images: (B, 3, S, S) uint8 pixels, or floats in [0, 1] (taken to the nearest 8-bit
            value, as a browser would show them); S = 256 in the game.
        bubbles: (B, N, 2) integer (x, y) centres in image pixels, padded with -1.
        counts: (B,) number of valid bubbles per item, or None to rely on the -1 padding.
        seeds: (B,) noise seeds, normally from `noise_seed(round_id, query_index)`.
        out: where to write the result (any memory format, e.g. the model's channels-last);
            the server passes a buffer it reuses, since a fresh one per batch costs page faults.
            A uint8 `out` receives the 8-bit pixels (0..255) instead of floats in [0, 1].
    """
    device = images.device
    crop = centre_crop(images)
    if crop.dtype != torch.uint8:
        crop = crop.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    batch, side = crop.shape[0], crop.shape[-1]
    masks = bubble_masks(bubbles.to(device), counts, size, images.shape[-1], crop=side)
    seeds = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} noise seeds for {batch} images")
    bank = noise_bank(noise_std, str(device))
    hidden = thread_buffer("hidden", (batch, 3, side, side), torch.int16, device)  # never leaves this call
    noised = masks.logical_not_().view(torch.uint8)[:, None]  # (B, 1, H, W): 0 in the bubbles; a view, no copy
    for row, seed in enumerate(seeds):
        # pixel + offset where hidden, pixel + 0 in a bubble: the clamp below leaves those alone.
        torch.addcmul(crop[row], _window(bank, seed, side), noised[row], out=hidden[row])
    hidden.clamp_(0, 255)
    if out is None:
        out = torch.empty(batch, 3, side, side, device=device)
    if out.dtype == torch.uint8:
        return out.copy_(hidden)  # the 8-bit pixels themselves (the network accepts them)
    return torch.div(hidden, 255.0, out=out)  # (B, 3, 224, 224) in [0, 1]
