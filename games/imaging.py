"""Turning an uploaded file into the game's stimulus: validation, normalisation, centre crop.

Pure Pillow: no database, so every bad-file case is testable on bytes alone. A file is either
normalised into an 8-bit RGB image the way a viewer would show it, or refused with a reason a
person can act on; the importer never lets one bad file stop a batch.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from model_server.canvas import to_canvas  # torch-free: the same canvas the partner decodes

# What an image set holds, in a folder (manage.py import_images) or a zip (games/services/image_uploads.py).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
MASK_SUFFIX = ".mask.png"  # `<stem>.mask.png` beside an image is its object mask

MIN_SIDE = 32  # smaller than this and the 256 crop is mostly interpolation
MAX_SIDE = 20_000  # a sliver 100000×10 passes a pixel budget but is no photograph


# Pillow's format parsers fail on malformed input with whatever error the byte soup provokes,
# not only OSError; these are the kinds seen from corrupt headers and streams.
_PILLOW_PARSE_ERRORS = (OSError, SyntaxError, ValueError, AttributeError, IndexError, TypeError, EOFError, struct.error)


class ImageRejected(ValueError):
    """A file that cannot become a stimulus; the message says why."""


@dataclass(frozen=True)
class PreparedImage:
    """An accepted image: the crop to store, the untouched original bytes and their facts."""

    crop: PILImage.Image
    original_bytes: bytes
    original_format: str
    original_size: tuple[int, int]
    checksum: str


def prepare_image(data: bytes, *, max_pixels: int, max_bytes: int) -> PreparedImage:
    """Validate `data` and return its 256×256 RGB centre crop, or raise ImageRejected."""
    if len(data) == 0:
        raise ImageRejected("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large ({len(data)} bytes > {max_bytes})")
    image = _open(data, max_pixels=max_pixels)
    fmt = image.format or "unknown"
    image = ImageOps.exif_transpose(image)  # phones store portrait shots sideways + a tag
    rgb = to_rgb(image)
    return PreparedImage(
        crop=to_canvas(rgb),
        original_bytes=data,
        original_format=fmt.lower(),
        original_size=rgb.size,
        checksum=hashlib.sha256(data).hexdigest(),
    )


def _open(data: bytes, *, max_pixels: int) -> PILImage.Image:
    """Open and fully decode `data`, checking its dimensions before decoding any pixel."""
    try:
        image = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected("not an image (format not recognised)") from None
    except PILImage.DecompressionBombError as exc:
        raise ImageRejected(f"too many pixels: possible decompression bomb ({exc})") from None
    except _PILLOW_PARSE_ERRORS as exc:
        raise ImageRejected(f"corrupt image header ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(f"too many pixels ({width}×{height} > {max_pixels}): possible decompression bomb")
    if max(width, height) > MAX_SIDE:
        raise ImageRejected(f"dimensions too large ({width}×{height}; longest side limit {MAX_SIDE})")
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(f"too small ({width}×{height}; shortest side must be at least {MIN_SIDE})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image.load()
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as exc:
        raise ImageRejected(f"too many pixels: possible decompression bomb ({exc})") from None
    except _PILLOW_PARSE_ERRORS as exc:
        raise ImageRejected(f"corrupt or truncated image ({exc})") from None
    return image


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Convert any supported mode to 8-bit RGB as a viewer would display it."""
    mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        # 16-bit greyscale: scale the full range down instead of clipping at 255.
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or pixels.max() > 255 else 255.0
        pixels = np.clip(pixels / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return PILImage.fromarray(pixels, mode="L").convert("RGB")
    if mode == "F":
        raise ImageRejected("unsupported pixel format (32-bit float)")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        # Transparent areas become white, as they look on a page.
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    # CMYK, YCbCr, L, 1, LAB, HSV: Pillow's converters handle the colour maths.
    return image.convert("RGB")


def prepare_mask(data: bytes, *, original_size: tuple[int, int]) -> PILImage.Image:
    """Crop an object mask exactly as its image was cropped; nearest-neighbour keeps it binary."""
    try:
        mask = PILImage.open(io.BytesIO(data))
        mask.load()
    except (UnidentifiedImageError, *_PILLOW_PARSE_ERRORS):
        raise ImageRejected("mask is not a readable image") from None
    mask = ImageOps.exif_transpose(mask)
    if mask.size != original_size:
        raise ImageRejected(f"mask is {mask.size[0]}×{mask.size[1]}, image is {original_size[0]}×{original_size[1]}")
    binary = mask.convert("L").point(lambda value: 255 if value >= 128 else 0)
    return to_canvas(binary, resample=PILImage.Resampling.NEAREST)


def png_bytes(image: PILImage.Image) -> bytes:
    """Encode an image as PNG (lossless: the crop is what the network and the maps see)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
