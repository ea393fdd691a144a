"""Tests for reading a ClickMe map export (HDF5 or NPZ, as maps.export_writers writes it) for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_server import train
from model_server.demo_data import CLASSES, save_demo_set
from model_server.export_data import ExportDataset, held_out
from model_server.network import load_checkpoint

# The site's own writers (pyarrow and h5py, no Django), so the layout read is the layout written.
writers = pytest.importorskip("maps.export_writers")


def write_export(directory: Path, images: list[Path], fmt: str) -> dict[str, np.ndarray]:
    """Export the object masks of all but the last image as their 'human' maps; return them by name."""
    directory.mkdir(parents=True, exist_ok=True)
    maps = {}
    context = writers.WriteContext(attrs={"experiment": "t"})
    index = writers.MapsIndexWriter(directory / "maps_index.csv", context)
    npz = writers.MapsNpzWriter(directory / "maps.npz", context) if fmt == "npz" else None
    hdf5 = writers.MapsHdf5Writer(directory / "maps.h5", context) if fmt == "hdf5" else None
    for path in images[:-1]:
        name = f"{path.parent.name}/{path.name}"  # a '/' in the name: the key escapes it
        array = np.asarray(Image.open(path.with_name(path.stem + ".mask.png")), dtype=np.float32) / 255
        maps[name] = array
        facts = {"key": writers.map_key(name), "image": name, "class": path.parent.name, "participants": 3}
        facts |= {"rounds": 3, "clicks": 30, "split_half_spearman": 0.8}
        item = writers.MapItem(facts, heatmap=lambda array=array: array)
        for writer in (index, npz, hdf5):
            if writer is not None:
                writer.write(item)
    for writer in (index, npz, hdf5):
        if writer is not None:
            writer.close()
    return maps


@pytest.fixture
def image_set(tmp_path: Path) -> list[Path]:
    return save_demo_set(tmp_path / "images", n_per_class=2)


@pytest.mark.parametrize("fmt", ["hdf5", "npz"])
def test_an_export_gives_images_labels_and_maps_in_the_partners_crop(
    tmp_path: Path, image_set: list[Path], fmt: str
) -> None:
    maps = write_export(tmp_path / "export", image_set, fmt)
    dataset = ExportDataset(tmp_path / "export", images=tmp_path / "images", split="all")
    assert len(dataset) == len(image_set)  # the unmapped image too
    assert dataset.classes == sorted(CLASSES)
    by_name = dict(zip(dataset.names, range(len(dataset)), strict=True))
    name = next(iter(maps))
    image, label, clickmap, has_map = dataset[by_name[name]]
    assert has_map
    assert image.shape == (3, 224, 224)
    assert dataset.classes[label] == name.split("/")[0]
    torch.testing.assert_close(clickmap[0], torch.from_numpy(maps[name][16:240, 16:240]))
    unmapped = image_set[-1].relative_to(tmp_path / "images").as_posix()
    assert dataset[by_name[unmapped]][3] is False  # still an image for the classifier


def test_the_split_is_by_image_seeded_and_disjoint(tmp_path: Path, image_set: list[Path]) -> None:
    write_export(tmp_path / "export", image_set, "hdf5")
    options = {"images": tmp_path / "images", "val_fraction": 0.3, "seed": 4}
    training = ExportDataset(tmp_path / "export", split="train", **options)
    validation = ExportDataset(tmp_path / "export", split="val", **options)
    assert not set(training.names) & set(validation.names)
    assert len(training) + len(validation) == len(image_set)
    assert validation.names == [name for name in sorted(training.names + validation.names) if held_out(name, 4, 0.3)]
    again = ExportDataset(tmp_path / "export", split="val", **options)
    assert again.names == validation.names


def test_mapped_images_without_pixels_are_an_error(tmp_path: Path, image_set: list[Path]) -> None:
    write_export(tmp_path / "export", image_set, "npz")
    with pytest.raises(FileNotFoundError, match="--images"):
        ExportDataset(tmp_path / "export")


def test_train_maps_co_trains_on_an_export(tmp_path: Path, image_set: list[Path]) -> None:
    write_export(tmp_path / "export", image_set, "hdf5")
    out = tmp_path / "model.pt"
    argv = ["--maps", str(tmp_path / "export"), "--images", str(tmp_path / "images"), "--cotrain", "--epochs", "1"]
    argv += ["--batch-size", "4", "--threads", "1", "--eval-bubbles", "10", "--widths", "4", "8", "8", "8"]
    train.main([*argv, "--val-fraction", "0.3", "--out", str(out)])
    model, checkpoint = load_checkpoint(out)
    assert model.config.num_classes == len(CLASSES)
    assert checkpoint["classes"] == sorted(CLASSES)
    assert checkpoint["metrics"]["eval_images"] > 0
    assert all("loss_map" in row for row in checkpoint["history"])
