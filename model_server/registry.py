"""What the model server holds: partner models by name and version, and decoded images by key."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from torch import nn

from model_server.canvas import IMAGE_SIZE, to_canvas
from model_server.network import attention_shapes, load_checkpoint

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"})


class BadRequest(ValueError):
    """The request cannot be served as sent (answered 400 with the message)."""


class NotFound(LookupError):
    """The request names a model or version the server has not loaded (answered 404)."""


@dataclass(frozen=True)
class LoadedModel:
    """One version of a partner model, ready to run on its device."""

    name: str
    version: str
    model: nn.Module
    classes: tuple[str, ...]
    arch: str
    checkpoint: str
    device: torch.device
    attention_shapes: tuple[tuple[int, int], ...] = ()  # (H, W) of each GALA block's map, in order


def load_model(name: str, checkpoint: Path, device: torch.device, version: str = "") -> LoadedModel:
    """Load a checkpoint (blocking: call it in a worker thread) as one version of a model."""
    model, ckpt = load_checkpoint(checkpoint, device)
    # Channels-last: tensor cores on the GPU want it, and oneDNN's CPU convolutions ran gala_small
    # 15-25% faster per CPU-second with it (batches of 8 and 32, one thread).
    model = model.to(memory_format=torch.channels_last)
    return LoadedModel(
        name=name,
        version=version or str(ckpt["version"]),
        model=model,
        classes=tuple(ckpt["classes"]),
        arch=str(ckpt["config"].get("arch", "")),
        checkpoint=str(checkpoint),
        device=device,
        attention_shapes=tuple(attention_shapes(model.config)),
    )


class ModelRegistry:
    """Loaded versions of each model and the active one that plain infer requests use.

    Only the event loop thread mutates it. A request holds the LoadedModel it resolved on
    arrival, so swapping or unloading a version never touches work already queued.
    """

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, LoadedModel]] = {}
        self._active: dict[str, str] = {}
        # Models unloaded whole, with the checkpoint their active version came from: the repository
        # index lists them as unavailable (as Triton does) and a bare load request loads it again.
        self._unloaded: dict[str, str] = {}

    def add(self, loaded: LoadedModel, *, activate: bool) -> None:
        """Register a loaded version (replacing one of the same name) and maybe make it active."""
        self._versions.setdefault(loaded.name, {})[loaded.version] = loaded
        self._unloaded.pop(loaded.name, None)
        if activate or loaded.name not in self._active:
            self.activate(loaded.name, loaded.version)

    def activate(self, name: str, version: str) -> None:
        """Make a loaded version the one that requests without a version get."""
        self.get(name, version)
        self._active[name] = version
        logger.info("model %s: version %s is active", name, version)

    def unload(self, name: str, version: str) -> None:
        """Forget a version that is not active (requests already holding it still finish)."""
        self.get(name, version)
        if self._active[name] == version:
            raise BadRequest(f"version {version!r} of {name!r} is active; activate another first")
        del self._versions[name][version]
        logger.info("model %s: version %s unloaded", name, version)

    def unload_model(self, name: str) -> None:
        """Forget every version of a model (the protocol's unload without a version)."""
        checkpoint = self.get(name).checkpoint
        del self._versions[name], self._active[name]
        self._unloaded[name] = checkpoint
        logger.info("model %s unloaded", name)

    def last_checkpoint(self, name: str) -> str | None:
        """Return the checkpoint of the model's active version, or of the one it had when unloaded."""
        if name in self._active:
            return self.get(name).checkpoint
        return self._unloaded.get(name)

    def index(self) -> list[dict[str, str]]:
        """Describe every model the server knows, as the repository extension's index does."""
        entries = [
            {"name": name, "version": version, "state": "READY"}
            for name in sorted(self._versions)
            for version in sorted(self._versions[name])
        ]
        entries += [{"name": name, "state": "UNAVAILABLE", "reason": "unloaded"} for name in sorted(self._unloaded)]
        return entries

    def loaded(self) -> list[LoadedModel]:
        """Return every loaded version of every model."""
        return [
            self._versions[name][version] for name in sorted(self._versions) for version in sorted(self._versions[name])
        ]

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """Return the named version, or the active one when version is None."""
        versions = self._versions.get(name)
        if not versions:
            raise NotFound(f"unknown model {name!r}; loaded models: {sorted(self._versions)}")
        version = self._active[name] if version is None else version
        if version not in versions:
            raise NotFound(f"model {name!r} has no version {version!r}; loaded: {sorted(versions)}")
        return versions[version]

    def versions(self, name: str) -> list[str]:
        """Return the loaded version names of a model."""
        self.get(name)
        return sorted(self._versions[name])

    def active_version(self, name: str) -> str:
        """Return the active version of a model."""
        return self.get(name).version

    def ready(self) -> bool:
        """Say whether every model has an active version (the server can answer)."""
        return bool(self._active)


def decode_image(path: Path) -> torch.Tensor:
    """Decode an image file into the 256x256 game canvas, uint8 (3, 256, 256)."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (IMAGE_SIZE, IMAGE_SIZE))  # JPEG: decode at a reduced scale when it is large
            canvas = image.convert("RGB")
    except Image.DecompressionBombError as error:
        raise BadRequest(f"image {path.name!r} is too large to decode: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        raise BadRequest(f"{path.name!r} is not a readable image") from error
    # The site stores canvases already (games/imaging.py); other files get the same rule.
    canvas = to_canvas(canvas)
    return torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy()).permute(2, 0, 1)


class ImageCache:
    """Resolves image keys safely under a root folder and keeps decoded canvases in an LRU."""

    def __init__(self, root: Path | None, capacity: int) -> None:
        self.root = root.resolve() if root is not None else None
        self.capacity = capacity
        self._images: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: str) -> torch.Tensor | None:
        """Return a cached canvas (counting a hit) or None (counting a miss)."""
        image = self._images.get(key)
        if image is None:
            self.misses += 1
            return None
        self.hits += 1
        self._images.move_to_end(key)
        return image

    def store(self, key: str, image: torch.Tensor) -> None:
        """Keep a decoded canvas, evicting the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        self._images[key] = image
        self._images.move_to_end(key)
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)

    def resolve(self, key: str) -> Path:
        """Return the file an image key names, refusing keys that could leave the root."""
        if self.root is None:
            raise BadRequest("this server has no --image-root: send 'image' pixels, not keys")
        if not key or "\\" in key or "\x00" in key:
            raise BadRequest(f"unsafe image key {key!r}")
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise BadRequest(f"unsafe image key {key!r}: must be a relative path without '..'")
        path = (self.root / relative).resolve()
        # A symlink inside the root could still point outside it.
        if not path.is_relative_to(self.root):
            raise BadRequest(f"unsafe image key {key!r}: it leaves the image root")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise BadRequest(f"image key {key!r} is not an image file ({sorted(IMAGE_SUFFIXES)})")
        if not path.is_file():
            raise BadRequest(f"unknown image key {key!r}")
        return path

    def load(self, key: str) -> torch.Tensor:
        """Resolve and decode an image key (blocking: call it in a worker thread)."""
        return decode_image(self.resolve(key))

    def stats(self) -> dict[str, int]:
        """Return hit, miss and size counters for monitoring and tests."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "size": len(self._images),
            "capacity": self.capacity,
        }
