"""A ClickMe map export as a training set: ``train --maps EXPORT_DIR [--images DIR]``.

Reads what ``maps.exports`` writes, without Django: ``maps.h5`` (group ``clickmaps/<key>`` holding
the dataset ``clickmap``, a float32 256x256 map in game-canvas pixels, and the attributes ``name``
and ``class``) or ``maps.npz`` (one ``<key>.npy`` per image) with ``maps_index.csv`` (key, image,
class). Maps are centre-cropped to the 224 pixels the partner sees, as every item in ``data.py``.

Images come from ``--images DIR`` (the image set: files found by their export name, their file
name or their stem, anywhere below DIR; the parent folder names the class of an image no map
names), or from an ``images/<key>`` uint8 (256, 256, 3) dataset in ``maps.h5`` or in ``crops.h5``
beside it, when an export carries its crops (the export format ``crops_hdf5``): then no
``--images`` is needed. Images without a map still train the classifier (``has_map`` False).

The train/validation split is by image and seeded: an image is held out when the hash of
``(seed, name)`` falls below ``val_fraction``, so it is the same on every machine and run, and it
stays put when images are added to the set.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from model_server.canvas import to_canvas
from model_server.data import IMAGE_SUFFIXES, MASK_SUFFIX, Item, crop_pixels
from model_server.reveal import centre_crop

HDF5_NAME, NPZ_NAME, INDEX_NAME = "maps.h5", "maps.npz", "maps_index.csv"
CROPS_NAME = "crops.h5"  # the site's "crops_hdf5" format: images/<key>, the same keys as maps.h5
SPLITS = ("train", "val", "all")


def held_out(name: str, seed: int, val_fraction: float) -> bool:
    """Whether image ``name`` is in the validation split: a stable hash of (seed, name), not Python's."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def read_maps(export: Path) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Return {image name: (class, map 256x256)} and any carried crops {image name: (256, 256, 3)}."""
    export = Path(export)
    if (export / HDF5_NAME).exists():
        import h5py  # only HDF5 exports need it

        maps, crops = {}, {}
        with contextlib.ExitStack() as files:
            file = files.enter_context(h5py.File(export / HDF5_NAME, "r"))
            # The crops come in maps.h5 itself or beside it in crops.h5 (the site's "crops_hdf5" format).
            carried = file.get("images")
            if carried is None and (export / CROPS_NAME).exists():
                carried = files.enter_context(h5py.File(export / CROPS_NAME, "r"))["images"]
            for key, group in file["clickmaps"].items():
                name = str(group.attrs.get("name", key))
                maps[name] = (str(group.attrs["class"]), np.asarray(group["clickmap"], dtype=np.float32))
                if carried is not None and key in carried:
                    crops[name] = np.asarray(carried[key], dtype=np.uint8)
        return maps, crops
    if (export / NPZ_NAME).exists():
        with (export / INDEX_NAME).open(newline="", encoding="utf-8") as handle:
            index = {row["key"]: row for row in csv.DictReader(handle)}
        maps = {}
        with zipfile.ZipFile(export / NPZ_NAME) as archive:
            for member in archive.namelist():
                row = index[member.removesuffix(".npy")]
                with archive.open(member) as stream:
                    maps[row["image"]] = (row["class"], np.lib.format.read_array(stream, allow_pickle=False))
        return maps, {}
    raise FileNotFoundError(f"{export}: no {HDF5_NAME} or {NPZ_NAME} (export the maps as HDF5 or NPZ)")


def find_images(root: Path) -> dict[str, Path]:
    """Index the image files below root by relative path, file name and stem (first one wins)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.endswith(MASK_SUFFIX):
            continue
        for name in (path.relative_to(root).as_posix(), path.name, path.stem):
            found.setdefault(name, path)
    return found


class ExportDataset(Dataset):
    """(image, label, map, has_map) items of one split of an export, images from a folder or the file."""

    def __init__(
        self,
        export: Path,
        *,
        images: Path | None = None,
        split: str = "train",
        val_fraction: float = 0.2,
        seed: int = 0,
        classes: Sequence[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        maps, crops = read_maps(Path(export))
        files = find_images(Path(images)) if images else {}
        # name -> (class, source): a carried crop, else a file; unmapped files class by their folder.
        entries: dict[str, str] = {name: label for name, (label, _) in maps.items()}
        if images:
            for path in sorted(set(files.values())):
                name = path.relative_to(images).as_posix()
                if not any(key in maps for key in (name, path.name, path.stem)):
                    entries[name] = path.parent.name
        missing = [name for name in maps if name not in crops and name not in files]
        if missing:
            raise FileNotFoundError(f"{len(missing)} mapped images have no pixels (give --images DIR): {missing[:3]}")
        self.classes = list(classes) if classes else sorted(set(entries.values()))
        chosen = sorted(
            name for name in entries if split == "all" or held_out(name, seed, val_fraction) == (split == "val")
        )
        self.names = [name for name in chosen if entries[name] in self.classes]
        self.labels = [self.classes.index(entries[name]) for name in self.names]
        self._maps = {name: maps[name][1] for name in self.names if name in maps}
        self._crops = {name: crops[name] for name in self.names if name in crops}
        self._files = {name: files[name] for name in self.names if name not in self._crops}

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.names)

    def __getitem__(self, index: int) -> Item:
        """Return (image (3, 224, 224) in [0, 1], label, map (1, 224, 224), whether it has a map)."""
        name = self.names[index]
        if name in self._crops:
            pixels = centre_crop(torch.from_numpy(self._crops[name]).permute(2, 0, 1)).contiguous()
        else:
            with Image.open(self._files[name]) as image:
                pixels = crop_pixels(to_canvas(image.convert("RGB")))
        image = pixels.float() / 255.0
        if name not in self._maps:
            return image, self.labels[index], torch.zeros(1, 224, 224), False
        values = centre_crop(torch.from_numpy(self._maps[name]))[None].float().clamp_min(0)
        return image, self.labels[index], values.contiguous(), True
