"""`import_images` stores good files, normalises odd ones, and rejects bad ones with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from games.imaging import png_bytes
from games.models import Image

pytestmark = pytest.mark.django_db


def save(path: Path, image: PILImage.Image, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def run_import(path: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command("import_images", str(path), "--image-set", "lab", "--no-progress", *extra, stdout=out)
    return out.getvalue()


def crop_pixels(name: str) -> np.ndarray:
    image = Image.objects.get(name=name)
    with image.crop.open("rb") as handle:
        return np.asarray(PILImage.open(handle).convert("RGB"))


def half_and_half(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> PILImage.Image:
    """An image whose left half is one colour and right half another."""
    image = PILImage.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def test_it_imports_class_folders_with_a_256_crop_and_the_original(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "a.jpg", half_and_half((400, 300), (255, 0, 0), (0, 0, 255)), quality=95)
    save(tmp_path / "cat" / "b.png", PILImage.new("RGB", (256, 512), (0, 200, 0)))
    output = run_import(tmp_path)
    assert "imported 2, already present 0, rejected 0" in output
    image = Image.objects.get(name="a")
    assert (image.category.name, image.original_width, image.original_height) == ("dog", 400, 300)
    assert image.original.read() == (tmp_path / "dog" / "a.jpg").read_bytes()
    pixels = crop_pixels("a")
    assert pixels.shape == (256, 256, 3)
    # 400×300 → 341×256, centre 256 columns keep the red/blue border in the middle.
    assert pixels[128, 10, 0] > 200 and pixels[128, 245, 2] > 200
    assert crop_pixels("b")[0, 0, 1] == 200


def test_running_it_twice_imports_nothing_new(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "a.png", PILImage.new("RGB", (300, 300), "white"))
    run_import(tmp_path)
    assert "imported 0, already present 1, rejected 0" in run_import(tmp_path)
    assert Image.objects.count() == 1


@pytest.mark.parametrize(
    "make_file, reason",
    [
        (lambda d: (d / "bad.png").write_bytes(b""), "empty file"),
        (lambda d: (d / "bad.png").write_text("this is not an image"), "not an image"),
        (lambda d: (d / "bad.png").write_bytes(png_bytes(PILImage.new("RGB", (400, 400), "red"))[:300]), "truncated"),
        (lambda d: save(d / "bad.png", PILImage.new("L", (3000, 3000))), "decompression bomb"),
        (lambda d: save(d / "bad.png", PILImage.new("1", (25_000, 40))), "dimensions too large"),
        (lambda d: save(d / "bad.png", PILImage.new("RGB", (20, 300))), "too small"),
        (lambda d: save(d / "bad.tif", PILImage.new("F", (64, 64))), "unsupported pixel format"),
    ],
    ids=["zero-size", "not-an-image", "truncated", "bomb", "huge-dimensions", "tiny", "float"],
)
def test_it_rejects_a_bad_file_with_a_reason(tmp_path: Path, settings, make_file, reason: str) -> None:
    settings.IMAGE_MAX_PIXELS = 4_000_000
    folder = tmp_path / "dog"
    folder.mkdir()
    make_file(folder)
    output = run_import(tmp_path)
    assert "imported 0, already present 0, rejected 1" in output
    assert reason in output
    assert Image.objects.count() == 0
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.*")), "a rejected file left files behind"


def test_one_bad_file_never_stops_the_batch(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "good1.png", PILImage.new("RGB", (256, 256), "red"))
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    save(tmp_path / "dog" / "good2.png", PILImage.new("RGB", (256, 256), "blue"))
    assert "imported 2, already present 0, rejected 1" in run_import(tmp_path)


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "cmyk.jpg", PILImage.new("CMYK", (300, 300), (0, 255, 255, 0)), quality=95)
    run_import(tmp_path)
    red, green, blue = crop_pixels("cmyk")[128, 128]
    assert red > 200 and green < 60 and blue < 60


def test_16_bit_greyscale_keeps_its_range(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 300, dtype=np.uint16), (300, 1))
    save(tmp_path / "dog" / "deep.png", PILImage.fromarray(ramp))
    run_import(tmp_path)
    pixels = crop_pixels("deep")
    assert pixels[:, 0].max() < 30 and pixels[:, -1].min() > 225  # not clipped to black/white


def test_palette_images_with_and_without_transparency_are_imported(tmp_path: Path) -> None:
    save(
        tmp_path / "dog" / "palette.png",
        PILImage.new("RGB", (300, 300), (10, 20, 200)).convert("P", palette=PILImage.Palette.ADAPTIVE),
    )
    transparent = PILImage.new("P", (300, 300), 0)
    transparent.putpalette([0, 0, 0] * 256)
    save(tmp_path / "dog" / "transparent.png", transparent, transparency=0)
    assert "imported 2" in run_import(tmp_path)
    assert tuple(crop_pixels("palette")[5, 5]) == (10, 20, 200)
    assert tuple(crop_pixels("transparent")[5, 5]) == (255, 255, 255)


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    rgba = PILImage.new("RGBA", (300, 300), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 150, 300))
    save(tmp_path / "dog" / "alpha.png", rgba)
    save(tmp_path / "dog" / "grey_alpha.png", PILImage.new("LA", (300, 300), (0, 128)))
    run_import(tmp_path)
    pixels = crop_pixels("alpha")
    assert tuple(pixels[128, 5]) == (0, 0, 255) and tuple(pixels[128, 250]) == (255, 255, 255)
    assert 120 <= crop_pixels("grey_alpha")[0, 0, 0] <= 135  # half-transparent black on white


def test_exif_rotation_is_applied_before_cropping(tmp_path: Path) -> None:
    image = half_and_half((400, 300), (255, 0, 0), (0, 0, 255))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": red ends up on top
    save(tmp_path / "dog" / "phone.jpg", image, exif=exif.tobytes(), quality=95)
    run_import(tmp_path)
    stored = Image.objects.get(name="phone")
    assert (stored.original_width, stored.original_height) == (300, 400)
    pixels = crop_pixels("phone")
    assert pixels[10, 128, 0] > 200 and pixels[245, 128, 2] > 200


def test_a_mask_beside_its_image_is_cropped_the_same_way(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "obj.png", PILImage.new("RGB", (512, 256), "white"))
    mask = PILImage.new("L", (512, 256), 0)
    mask.paste(255, (256, 0, 512, 256))  # right half of the original
    save(tmp_path / "dog" / "obj.mask.png", mask)
    assert "imported 1" in run_import(tmp_path)
    stored = Image.objects.get(name="obj")
    with stored.mask.open("rb") as handle:
        cropped = np.asarray(PILImage.open(handle))
    assert cropped.shape == (256, 256) and set(np.unique(cropped)) == {0, 255}
    assert cropped[:, :128].max() == 0 and cropped[:, 128:].min() == 255


def test_a_csv_manifest_names_files_and_classes(tmp_path: Path) -> None:
    save(tmp_path / "files" / "x.png", PILImage.new("RGB", (256, 256), "red"))
    save(tmp_path / "files" / "y.png", PILImage.new("RGB", (256, 256), "blue"))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,class\nfiles/x.png,fox\nfiles/y.png,owl\nfiles/missing.png,owl\n")
    output = run_import(manifest)
    assert "imported 2, already present 0, rejected 1" in output
    assert "missing: cannot read file" in output
    assert dict(Image.objects.values_list("name", "category__name")) == {"x": "fox", "y": "owl"}


def test_a_manifest_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,label\na.png,fox\n")
    with pytest.raises(Exception, match="'path' and 'class'"):
        run_import(manifest)
