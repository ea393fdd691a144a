"""The 256x256 game canvas every image becomes (docs/game-api.md), in one place for the site and the server.

Pure Pillow, no torch: the site (games.imaging) imports it, and the web image does not install
torch. The model server's image decoding (registry.decode_image) and training (data.ImageFolder)
use it too, so a photo gives the same canvas on the site, at serving and in training.
"""

from __future__ import annotations

from PIL import Image

IMAGE_SIZE = 256  # the game canvas: short side resized to 256, centre-cropped


def to_canvas(image: Image.Image, size: int = IMAGE_SIZE, *, resample: int = Image.Resampling.BICUBIC) -> Image.Image:
    """Resize so the short side is `size`, then cut the central `size`x`size` square; keeps the mode."""
    if image.size == (size, size):
        return image
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    # reducing_gap: Pillow first shrinks by a whole factor, then resamples the rest; at 3.0 its
    # docs call the result indistinguishable from a plain resize in most cases, and it is faster.
    resized = image.resize((width, height), resample=resample, reducing_gap=3.0)
    left, top = (width - size) // 2, (height - size) // 2
    return resized.crop((left, top, left + size, top + size))
