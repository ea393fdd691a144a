"""The 256x256 game canvas shared by the site's import, the server's decoding and training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from model_server import demo_data
from model_server.canvas import IMAGE_SIZE, to_canvas
from model_server.data import ImageFolder, crop_pixels
from model_server.registry import decode_image


def test_a_canvas_sized_image_is_left_as_it_is() -> None:
    # The demo set is drawn at 256 px, so no resampling filter ever touches it.
    sample = next(demo_data.generate(n_per_class=1, seed=0))
    assert sample.image.size == (IMAGE_SIZE, IMAGE_SIZE)
    assert to_canvas(sample.image) is sample.image


def test_the_short_side_becomes_256_and_the_central_square_is_kept() -> None:
    tall = np.zeros((600, 300), dtype=np.uint8)  # 300 wide: 256 wide x 512 high, rows 128..383 kept
    tall[100:500] = 255
    canvas = to_canvas(Image.fromarray(tall, "L"), resample=Image.Resampling.NEAREST)
    assert canvas.size == (IMAGE_SIZE, IMAGE_SIZE) and canvas.mode == "L"
    assert np.asarray(canvas).min() == 255


def test_the_server_and_training_see_the_same_pixels_of_a_photo(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (300, 517, 3), dtype=np.uint8)
    (tmp_path / "cats").mkdir()
    Image.fromarray(pixels).save(tmp_path / "cats" / "photo.png")
    served = decode_image(tmp_path / "cats" / "photo.png")  # (3, 256, 256) uint8
    trained, *_ = ImageFolder(tmp_path)[0]  # (3, 224, 224) in [0, 1]
    assert served.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    expected = crop_pixels(Image.fromarray(served.permute(1, 2, 0).numpy())).float() / 255.0
    assert trained.equal(expected)


def test_importing_the_canvas_does_not_import_torch() -> None:
    code = "import sys, model_server.canvas; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
