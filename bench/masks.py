"""Which mask goes with a served image, from the media folder alone (no database from the load generator).

The site serves a round's image as the stored crop file (`images/crops/xx/<checksum>.png`), whose
mask is `images/masks/xx/<checksum>.png`: hashing the bytes a player downloaded finds its mask.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def mask_index(media_root: Path) -> dict[str, np.ndarray]:
    """SHA-256 of each crop's bytes → its object mask (true on the object)."""
    index: dict[str, np.ndarray] = {}
    for crop in Path(media_root).glob("images/crops/*/*.png"):
        mask = Path(media_root) / "images" / "masks" / crop.parent.name / crop.name
        if mask.exists():
            index[hashlib.sha256(crop.read_bytes()).hexdigest()] = np.asarray(Image.open(mask).convert("L")) > 127
    return index
