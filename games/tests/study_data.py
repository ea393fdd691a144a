"""Helpers for the study tests: small generated images, zips of class folders, researchers, a fake partner."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import Group, User
from PIL import Image as PILImage

from games.services.studies import RESEARCHERS_GROUP
from model_server.client import PartnerRequestError

# Classes the demo partner does not know (the demo's are shapes).
NEW_CLASSES = ["bicycle", "kettle", "lantern", "teapot", "umbrella"]


def png(colour: tuple[int, int, int] = (200, 60, 40), size: int = 64) -> bytes:
    """A small PNG whose colour makes its bytes (and so its checksum) unique."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_png(size: int = 64) -> bytes:
    mask = PILImage.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding `files` (member name → content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def image_zip(classes: dict[str, int], *, start: int = 0) -> bytes:
    """A zip of `<class>/<class>_<n>.png` with that many distinct images per class."""
    files = {}
    for index, (category, count) in enumerate(classes.items()):
        for number in range(count):
            files[f"{category}/{category}_{number}.png"] = png((40 * index + start, 20 * number + 5, 90))
    return zip_bytes(files)


def researcher(username: str, password: str | None = None) -> User:
    """A user in the researchers group (not a superuser, not staff), made the first time it is asked for."""
    user = User.objects.filter(username=username).first() or User.objects.create_user(username, password=password)
    user.groups.add(Group.objects.get_or_create(name=RESEARCHERS_GROUP)[0])  # flushed by transactional tests
    return user


class FakePartnerClient:
    """Answers `metadata` as the model server would, for the names given; 404 for any other."""

    def __init__(self, models: dict[str, list[str]]) -> None:
        self.models = models

    def metadata(self, name: str) -> dict:
        if name not in self.models:
            raise PartnerRequestError(404, f"unknown model {name!r}")
        return {"name": name, "classes": list(self.models[name])}


def fake_live_client(models: dict[str, list[str]]):
    """A stand-in for games.partner.live_client serving these models' class lists."""

    @contextmanager
    def live_client() -> Iterator[FakePartnerClient]:
        yield FakePartnerClient(models)

    return live_client
