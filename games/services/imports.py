"""Writes of the games app: importing images, seeding the demo."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from games.imaging import ImageRejected, png_bytes, prepare_image, prepare_mask
from games.models import Category, Image, ImageSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one file: imported, already there (duplicate), or rejected with why."""

    name: str
    status: str  # "imported" | "duplicate" | "rejected"
    reason: str = ""
    image: Image | None = None


def import_image(
    *,
    image_set: ImageSet,
    category_name: str,
    name: str,
    data: bytes,
    mask_data: bytes | None = None,
    is_catch_trial: bool = False,
) -> ImportOutcome:
    """Store one image (crop, original, optional mask) in `image_set`, or say why not.

    Idempotent: the same bytes in the same set are reported as a duplicate, so an import can
    be re-run after an interruption. Nothing partial is kept: files written for a row that
    could not be saved are deleted again.
    """
    category_name = category_name.strip()
    if not category_name:
        return ImportOutcome(name, "rejected", "no class given")
    try:
        prepared = prepare_image(data, max_pixels=settings.IMAGE_MAX_PIXELS, max_bytes=settings.IMAGE_MAX_BYTES)
        mask = prepare_mask(mask_data, original_size=prepared.original_size) if mask_data else None
    except ImageRejected as exc:
        return ImportOutcome(name, "rejected", str(exc))
    existing = Image.objects.filter(image_set=image_set, checksum=prepared.checksum).first()
    if existing is not None:
        return ImportOutcome(name, "duplicate", f"same file as {existing.name}", existing)
    if Image.objects.filter(image_set=image_set, name=name).exists():
        return ImportOutcome(name, "rejected", f"another image in {image_set} is already named {name!r}")
    if is_catch_trial and mask is None:
        return ImportOutcome(name, "rejected", "a catch-trial image needs an object mask")

    image = Image(
        image_set=image_set,
        name=name,
        checksum=prepared.checksum,
        original_width=prepared.original_size[0],
        original_height=prepared.original_size[1],
        is_catch_trial=is_catch_trial,
    )
    written: list = []
    try:
        with transaction.atomic():
            image.category, _ = Category.objects.get_or_create(name=category_name)
            image.crop.save("crop.png", ContentFile(png_bytes(prepared.crop)), save=False)
            written.append(image.crop)
            image.original.save(f"original.{prepared.original_format}", ContentFile(data), save=False)
            written.append(image.original)
            if mask is not None:
                image.mask.save("mask.png", ContentFile(png_bytes(mask)), save=False)
                written.append(image.mask)
            # Assigning the file resets the dimension fields; set them from the crop itself.
            image.crop_width, image.crop_height = prepared.crop.size
            image.save()
    except IntegrityError as exc:
        # A concurrent import of the same file won the race; report it like any duplicate.
        for field_file in written:
            field_file.delete(save=False)
        return ImportOutcome(name, "rejected", f"could not be stored: {exc}")
    except BaseException:
        for field_file in written:
            field_file.delete(save=False)
        raise
    logger.debug("imported image %s (%s) into %s", name, category_name, image_set)
    return ImportOutcome(name, "imported", image=image)
