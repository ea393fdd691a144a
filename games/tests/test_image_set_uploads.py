"""A zip of class folders becomes an image set, or nothing at all with every reason listed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from games.models import Category, Image, ImageSet
from games.services.image_uploads import UploadRejected, create_image_set
from games.tests.study_data import image_zip, mask_png, png, researcher, zip_bytes

pytestmark = pytest.mark.django_db


def upload(data: bytes, name: str = "kitchen") -> object:
    return create_image_set(name=name, description="", owner=researcher("owner"), archive=io.BytesIO(data))


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def refused(data: bytes, settings) -> list[str]:
    """Upload `data`, expect a refusal, check nothing was stored, and return the reasons."""
    with pytest.raises(UploadRejected) as refusal:
        upload(data)
    assert not ImageSet.objects.filter(name="kitchen").exists()
    assert not Image.objects.exists() and not Category.objects.exists()
    assert media_files(settings) == []
    return refusal.value.problems


def test_class_folders_become_an_owned_image_set_with_masks(settings) -> None:
    files = {"teapot/a.png": png((1, 2, 3)), "teapot/a.mask.png": mask_png(), "bicycle/b.png": png((4, 5, 6)),
             "bicycle/notes.txt": b"not an image"}  # fmt: skip
    result = upload(zip_bytes(files))
    assert result.image_set.owner.username == "owner" and result.imported == 2
    assert result.ignored == ["bicycle/notes.txt"]
    images = {image.name: image for image in result.image_set.images.select_related("category")}
    assert {name: image.category.name for name, image in images.items()} == {"a": "teapot", "b": "bicycle"}
    assert images["a"].mask and not images["b"].mask


def test_one_folder_wrapping_the_class_folders_is_looked_through(settings) -> None:
    result = upload(zip_bytes({"kitchen/teapot/a.png": png(), "kitchen/bicycle/b.png": png((9, 9, 9))}))
    assert set(result.image_set.images.values_list("category__name", flat=True)) == {"teapot", "bicycle"}


def test_a_file_that_is_not_a_zip_is_refused(settings) -> None:
    assert refused(b"PK but not really a zip", settings) == ["The file is not a zip archive (or it is damaged)."]


def test_an_empty_zip_is_refused(settings) -> None:
    assert "The zip is empty" in refused(zip_bytes({}), settings)[0]


def test_a_zip_without_class_folders_is_refused(settings) -> None:
    assert "no class folders" in refused(zip_bytes({"a.png": png(), "b.png": png((7, 7, 7))}), settings)[0]


def test_files_outside_class_folders_are_named(settings) -> None:
    problems = refused(zip_bytes({"teapot/a.png": png(), "loose.png": png((7, 7, 7))}), settings)
    assert problems == ["loose.png: not directly inside a class folder (expected <class>/<file>)."]


def test_every_rejected_image_is_listed_with_its_reason_and_nothing_is_kept(settings) -> None:
    truncated = png((3, 3, 3), size=200)[:300]
    files = {"teapot/good.png": png(), "teapot/fake.png": b"not an image", "teapot/cut.png": truncated,
             "bicycle/tiny.png": png(size=8), "bicycle/fine.png": png((8, 8, 8))}  # fmt: skip
    problems = refused(zip_bytes(files), settings)
    assert len(problems) == 3, problems
    assert any(p.startswith("teapot/fake.png: not an image") for p in problems)
    assert any(p.startswith("teapot/cut.png: corrupt or truncated image") for p in problems)
    assert any(p.startswith("bicycle/tiny.png: too small") for p in problems)


def test_an_image_over_the_size_limit_is_refused(settings) -> None:
    settings.IMAGE_MAX_BYTES = 100
    problems = refused(zip_bytes({"teapot/big.png": png()}), settings)
    assert problems[0].startswith("teapot/big.png: file too large")


def test_duplicate_names_and_duplicate_files_are_refused(settings) -> None:
    problems = refused(zip_bytes({"teapot/a.png": png(), "bicycle/a.jpg": png((5, 5, 5))}), settings)
    assert problems[0].startswith("bicycle/a.jpg: duplicate name 'a' (also teapot/a.png)")
    problems = refused(zip_bytes({"teapot/a.png": png(), "teapot/b.png": png()}), settings)
    assert problems == ["teapot/b.png: same file as a (the same image twice)."]


def test_a_mask_without_its_image_or_of_the_wrong_size_is_refused(settings) -> None:
    problems = refused(zip_bytes({"teapot/a.png": png(), "teapot/z.mask.png": mask_png()}), settings)
    assert problems == ["teapot/z.mask.png: a mask with no image z.* beside it."]
    problems = refused(zip_bytes({"teapot/a.png": png(), "teapot/a.mask.png": mask_png(size=40)}), settings)
    assert problems == ["teapot/a.png: mask is 40×40, image is 64×64."]


@pytest.mark.parametrize("name", ["../teapot/a.png", "/teapot/a.png", "teapot\\..\\a.png", "c:/teapot/a.png"])
def test_paths_that_climb_out_are_refused(settings, name) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(zipfile.ZipInfo("teapot/ok.png"), png())
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # ZipInfo would clean the name; an attacker's archiver does not
        zipped.writestr(info, png((9, 9, 9)))
    assert "unsafe path" in refused(buffer.getvalue(), settings)[0]


def test_a_zip_bomb_is_refused_before_it_is_unpacked(settings) -> None:
    bomb = zip_bytes({"teapot/a.png": png(), "teapot/bomb.png": b"\0" * 5_000_000})
    problems = refused(bomb, settings)
    assert problems[0].startswith("teapot/bomb.png: compressed") and "zip bomb" in problems[0]


def test_too_many_files_are_refused(settings) -> None:
    settings.IMAGE_SET_ZIP_MAX_FILES = 2
    assert "at most 2 are accepted" in refused(image_zip({"teapot": 3}), settings)[0]


def test_system_files_of_archivers_are_skipped(settings) -> None:
    files = {"teapot/a.png": png(), "__MACOSX/teapot/._a.png": b"junk", "teapot/.DS_Store": b"junk"}
    assert upload(zip_bytes(files)).imported == 1
