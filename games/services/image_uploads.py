"""A researcher's image set from one zip: `<class>/<file>` as `import_images` reads folders, all or nothing.

Every file goes through `imports.import_image`, so an upload accepts and refuses exactly what the
command does. Unlike the command, one bad file refuses the whole upload: a study must not start
on a set that silently lacks the pictures its researcher meant to include. The message lists
every bad file and why (docs/running-a-study.md, "Upload the images").
"""

from __future__ import annotations

import logging
import posixpath
import zipfile
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction

from games.imaging import IMAGE_SUFFIXES, MASK_SUFFIX
from games.models import Image, ImageSet
from games.services.imports import import_image

logger = logging.getLogger(__name__)

MAX_COMPRESSION_RATIO = 100  # images barely compress; a member that shrank more is a zip bomb


class UploadRejected(Exception):
    """The zip cannot become an image set; `problems` lists each reason (one per bad file)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Member:
    """One image in the zip: its class folder, its name (the file's stem) and its mask's member."""

    info: zipfile.ZipInfo
    category: str
    name: str
    mask: zipfile.ZipInfo | None


@dataclass(frozen=True)
class UploadResult:
    image_set: ImageSet
    imported: int
    ignored: list[str]  # files that are not images by their suffix, skipped as import_images skips them


def create_image_set(*, name: str, description: str, owner: AbstractBaseUser, archive: IO[bytes]) -> UploadResult:
    """Make image set `name` owned by `owner` from the zip `archive`, or raise UploadRejected.

    On refusal no ImageSet, Image or Category row and no media file is left behind.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            members, ignored = read_members(zipped)
            return _import(zipped, members, ignored, name=name, description=description, owner=owner)
    except zipfile.BadZipFile:
        raise UploadRejected(["The file is not a zip archive (or it is damaged)."]) from None


def read_members(zipped: zipfile.ZipFile) -> tuple[list[Member], list[str]]:
    """The images of the zip with their classes and masks, after the layout and zip-bomb checks."""
    files = [info for info in zipped.infolist() if not info.is_dir()]
    problems = [problem for info in files if (problem := _unsafe(info))]
    if problems:
        raise UploadRejected(problems)
    infos = [info for info in files if not _is_hidden(info.filename)]
    if not infos:
        raise UploadRejected(["The zip is empty: it should hold one folder per class, with the images inside."])
    if len(infos) > settings.IMAGE_SET_ZIP_MAX_FILES:
        raise UploadRejected([f"The zip holds {len(infos)} files; at most {settings.IMAGE_SET_ZIP_MAX_FILES} are "
                              "accepted (IMAGE_SET_ZIP_MAX_FILES)."])  # fmt: skip
    paths = _strip_common_folder([info.filename for info in infos])
    by_path = dict(zip(paths, infos, strict=True))
    if not any(len(path.split("/")) == 2 for path in paths):
        raise UploadRejected(["The zip has no class folders: put each image in a folder named after its class, "
                              "as <class>/<file>."])  # fmt: skip

    members, ignored, seen = [], [], {}
    for path, info in by_path.items():
        parts = path.split("/")
        if len(parts) != 2:
            problems.append(f"{info.filename}: not directly inside a class folder (expected <class>/<file>).")
            continue
        category, filename = parts
        if filename.endswith(MASK_SUFFIX):
            stem = filename[: -len(MASK_SUFFIX)]
            if not any(posixpath.splitext(other)[0] == f"{category}/{stem}" for other in paths if other != path):
                problems.append(f"{info.filename}: a mask with no image {stem}.* beside it.")
            continue
        stem, suffix = posixpath.splitext(filename)
        if suffix and suffix.lower() not in IMAGE_SUFFIXES:
            ignored.append(info.filename)
            continue
        if stem in seen:
            problems.append(f"{info.filename}: duplicate name {stem!r} (also {seen[stem]}); image names must be "
                            "unique in a set.")  # fmt: skip
            continue
        seen[stem] = info.filename
        members.append(Member(info, category, stem, by_path.get(f"{category}/{stem}{MASK_SUFFIX}")))
    if problems:
        raise UploadRejected(problems)
    if not members:
        raise UploadRejected(["The zip holds no images (" + ", ".join(IMAGE_SUFFIXES) + ")."])
    return members, ignored


def _is_hidden(filename: str) -> bool:
    # Folders and files that archivers add (macOS resource forks, .DS_Store) are nobody's images.
    return any(part.startswith(".") or part == "__MACOSX" for part in filename.split("/"))


def _unsafe(info: zipfile.ZipInfo) -> str:
    """Why a member may not be read (path traversal, oversize, zip bomb); empty when it may."""
    name = info.filename
    if name.startswith("/") or "\\" in name or ".." in name.split("/") or ":" in name:
        return f"{name}: unsafe path (absolute, with .. or a drive); use plain <class>/<file> names."
    if info.flag_bits & 0x1:
        return f"{name}: encrypted; upload a zip without a password."
    if info.file_size > settings.IMAGE_MAX_BYTES:
        return f"{name}: file too large ({info.file_size} bytes > {settings.IMAGE_MAX_BYTES})."
    if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
        return f"{name}: compressed {info.file_size // info.compress_size}:1, possibly a zip bomb."
    return ""


def _strip_common_folder(paths: list[str]) -> list[str]:
    """Drop one folder that wraps everything (zipping the set's folder itself): `set/<class>/<file>`."""
    tops = {path.split("/", 1)[0] for path in paths}
    if len(tops) == 1 and all(path.count("/") >= 2 for path in paths):
        return [path.split("/", 1)[1] for path in paths]
    return paths


def _read(zipped: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Read one byte past the limit: a header that understates the size cannot smuggle in more.
    with zipped.open(info) as handle:
        data = handle.read(settings.IMAGE_MAX_BYTES + 1)
    if len(data) > settings.IMAGE_MAX_BYTES:
        raise UploadRejected([f"{info.filename}: file too large (> {settings.IMAGE_MAX_BYTES} bytes)."])
    return data


def _import(
    zipped: zipfile.ZipFile, members: list[Member], ignored: list[str], *, name: str, description: str,
    owner: AbstractBaseUser,
) -> UploadResult:  # fmt: skip
    written: list[str] = []
    try:
        with transaction.atomic():
            image_set = ImageSet.objects.create(name=name, description=description, owner=owner)
            problems = []
            for member in members:
                try:
                    data = _read(zipped, member.info)
                    mask = _read(zipped, member.mask) if member.mask else None
                except (zipfile.BadZipFile, OSError, EOFError) as error:  # a CRC mismatch, a cut-off member
                    problems.append(f"{member.info.filename}: cannot be read from the zip ({error}).")
                    continue
                except UploadRejected as error:
                    problems += error.problems
                    continue
                outcome = import_image(image_set=image_set, category_name=member.category, name=member.name,
                                       data=data, mask_data=mask)  # fmt: skip
                if outcome.status == "imported":
                    written += _files(outcome.image)
                elif outcome.status == "duplicate":
                    problems.append(f"{member.info.filename}: {outcome.reason} (the same image twice).")
                else:
                    problems.append(f"{member.info.filename}: {outcome.reason}.")
            if problems:
                raise UploadRejected(problems)  # rolls back the set, its images and any new categories
    except BaseException:
        for path in written:
            default_storage.delete(path)
        raise
    logger.info("image set %s uploaded by %s: %d images", image_set, owner, len(members))
    return UploadResult(image_set, len(members), ignored)


def _files(image: Image) -> list[str]:
    return [field.name for field in (image.crop, image.original, image.mask) if field]
