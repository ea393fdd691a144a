"""Datasets of (image, label, map) for training, and the bubble sampler that imitates painting.

Every item is what the partner sees of a whole image: the 224 centre crop of the 256 game canvas
(docs/game-api.md), as floats in [0, 1], with its label and an optional map in the same pixels (an
object mask for the demo set, a ClickMe map from the ``maps`` export otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from model_server import demo_data
from model_server.canvas import to_canvas
from model_server.reveal import CROP_SIZE, centre_crop

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIX = ".mask.png"  # written next to each image by demo_data.save_demo_set

Item = tuple[torch.Tensor, int, torch.Tensor, bool]


def crop_pixels(image: Image.Image) -> torch.Tensor:
    """Return the 224 centre crop of a 256 canvas as a uint8 tensor (3, 224, 224)."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # (3, 256, 256)
    return centre_crop(pixels).contiguous()


class ImageFolder(Dataset):
    """A folder of class sub-folders, each image optionally with a ``<name><map_suffix>`` map."""

    def __init__(self, root: Path, *, classes: Sequence[str] | None = None, map_suffix: str = MASK_SUFFIX) -> None:
        root = Path(root)
        # Class order comes from the caller (a checkpoint's classes) or, like torchvision, sorting.
        self.classes = list(classes) if classes else sorted(p.name for p in root.iterdir() if p.is_dir())
        self.map_suffix = map_suffix
        self.items = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((root / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.endswith(map_suffix)
        ]

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.items)

    def __getitem__(self, index: int) -> Item:
        """Return (image (3, 224, 224) in [0, 1], label, map (1, 224, 224), has_map)."""
        path, label = self.items[index]
        with Image.open(path) as image:
            pixels = crop_pixels(to_canvas(image.convert("RGB"))).float() / 255.0
        map_path = path.with_name(path.name[: -len(path.suffix)] + self.map_suffix)
        if not map_path.exists():
            return pixels, label, torch.zeros(1, CROP_SIZE, CROP_SIZE), False
        if map_path.suffix == ".npy":
            values = np.load(map_path).astype(np.float32)  # already in canvas pixels, 256x256
        else:
            with Image.open(map_path) as mask:
                values = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
        return pixels, label, centre_crop(torch.from_numpy(values))[None].contiguous(), True


class DemoDataset(Dataset):
    """The procedural demo set drawn in memory (no files), with object masks as maps."""

    def __init__(
        self,
        *,
        n_per_class: int,
        seed: int = 0,
        split: str = "train",
        background_cue: bool | str = False,
        classes: Sequence[str] = demo_data.CLASSES,
    ) -> None:
        self.classes = list(classes)
        images, labels, masks = [], [], []
        for sample in demo_data.generate(
            n_per_class=n_per_class, seed=seed, split=split, background_cue=background_cue, classes=classes
        ):
            images.append(crop_pixels(sample.image))
            labels.append(sample.label)
            masks.append(centre_crop(torch.from_numpy(sample.mask)))
        # uint8 and bool keep 1,000 images in ~200 MB; floats are made per item.
        self.images = torch.stack(images)  # (N, 3, 224, 224) uint8
        self.labels = torch.tensor(labels)  # (N,)
        self.masks = torch.stack(masks)[:, None]  # (N, 1, 224, 224) bool

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.labels)

    def __getitem__(self, index: int) -> Item:
        """Return (image (3, 224, 224) in [0, 1], label, mask (1, 224, 224) as float, True)."""
        image = self.images[index].float() / 255.0
        return image, int(self.labels[index]), self.masks[index].float(), True


def sample_bubbles(
    maps: torch.Tensor,
    counts: torch.Tensor,
    generator: torch.Generator,
    *,
    step: float = 7.0,
    off_map: float = 0.1,
) -> torch.Tensor:
    """Sample painted bubble centres (B, N, 2) as (x, y), padded with -1, following maps (B, 1, H, W).

    Players paint strokes: a bubble lands at most ``step`` px from the previous one (docs/game-api.md,
    "Painting") and strokes stay on what matters. So each stroke starts at a point drawn in proportion to
    the map (or, with probability ``off_map``, anywhere), wanders with a drifting heading, and
    restarts elsewhere when it would leave the map (values < 0.5) or the image.
    """
    batch, _, height, width = maps.shape
    length = max(int(counts.max()), 1)
    flat = maps.flatten(1).float().clamp_min(0)  # (B, H*W)
    weights = (1 - off_map) * flat / flat.sum(1, keepdim=True).clamp_min(1e-8) + off_map / flat.shape[1]
    starts = torch.multinomial(weights, length, replacement=True, generator=generator)  # (B, N)
    starts = torch.stack([starts % width, starts // width], dim=-1).float()  # (B, N, 2)
    position, heading = starts[:, 0], torch.rand(batch, generator=generator) * 2 * math.pi
    rows = torch.arange(batch)
    centres = [position]
    for index in range(1, length):
        heading = heading + 0.5 * torch.randn(batch, generator=generator)
        stride = step * (0.5 + 0.5 * torch.rand(batch, generator=generator))
        moved = position + stride[:, None] * torch.stack([heading.cos(), heading.sin()], dim=-1)
        x, y = moved.round().long().unbind(-1)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        on_map = inside & (maps[rows, 0, y.clamp(0, height - 1), x.clamp(0, width - 1)] >= 0.5)
        position = torch.where(on_map[:, None], moved, starts[:, index])
        heading = torch.where(on_map, heading, torch.rand(batch, generator=generator) * 2 * math.pi)
        centres.append(position)
    bubbles = torch.stack(centres, dim=1).round().to(torch.int32)  # (B, N, 2)
    bubbles[torch.arange(length)[None, :] >= counts[:, None]] = -1
    return bubbles
