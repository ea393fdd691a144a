"""Tests for training: the entry point, the bubble sampler, and the shipped demo partner."""

from __future__ import annotations

from pathlib import Path

import torch

from model_server import train
from model_server.data import DemoDataset, ImageFolder, sample_bubbles
from model_server.demo_data import CLASSES, save_demo_set
from model_server.network import load_checkpoint

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.pt"
TINY = ["--epochs", "1", "--batch-size", "4", "--eval-bubbles", "10", "--threads", "1"]


def test_a_short_demo_run_writes_a_checkpoint_that_rebuilds(tmp_path: Path) -> None:
    out = tmp_path / "demo.pt"
    argv = ["--demo", "--n-per-class", "1", "--val-per-class", "1", "--out", str(out), "--cotrain"]
    assert train.main([*argv, *TINY, "--version", "test-1"]) == out
    model, checkpoint = load_checkpoint(out)
    assert checkpoint["classes"] == list(CLASSES)
    assert checkpoint["version"] == "test-1"
    assert checkpoint["train"]["cotrain"] is True
    assert set(checkpoint["metrics"]) == {"top1_whole", "top1_revealed", "eval_images"}
    assert checkpoint["metrics"]["eval_images"] == len(CLASSES)
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, len(CLASSES))


def test_a_folder_run_takes_classes_from_the_folders(tmp_path: Path) -> None:
    save_demo_set(tmp_path / "train", n_per_class=1)
    save_demo_set(tmp_path / "val", n_per_class=1, split="test")
    out = tmp_path / "folder.pt"
    argv = ["--data", str(tmp_path / "train"), "--val-data", str(tmp_path / "val")]
    train.main([*argv, *TINY, "--out", str(out), "--widths", "4", "8", "8", "8"])
    model, checkpoint = load_checkpoint(out)
    assert checkpoint["classes"] == sorted(CLASSES)
    assert model.config.widths == (4, 8, 8, 8)


def test_image_folder_items_match_the_demo_images(tmp_path: Path) -> None:
    save_demo_set(tmp_path, n_per_class=1, seed=3)
    folder = ImageFolder(tmp_path, classes=CLASSES)
    demo = DemoDataset(n_per_class=1, seed=3)
    assert len(folder) == len(demo)
    image, label, mask, has_map = folder[0]
    expected_image, expected_label, expected_mask, _ = demo[0]
    assert has_map
    assert label == expected_label
    torch.testing.assert_close(image, expected_image)
    torch.testing.assert_close(mask, expected_mask)


def test_bubbles_follow_the_map_in_short_steps() -> None:
    maps = torch.zeros(2, 1, 224, 224)
    maps[:, :, 80:150, 60:170] = 1.0
    counts = torch.tensor([40, 25])
    generator = torch.Generator().manual_seed(0)
    bubbles = sample_bubbles(maps, counts, generator, off_map=0.0)
    assert bubbles.shape == (2, 40, 2)
    assert (bubbles[1, 25:] == -1).all()
    for row, count in enumerate(counts.tolist()):
        x, y = bubbles[row, :count].long().unbind(-1)
        assert maps[row, 0, y, x].all()
        steps = (bubbles[row, 1:count] - bubbles[row, : count - 1]).float().norm(dim=-1)
        assert (steps <= 8).float().mean() > 0.8  # strokes: mostly short steps, a few restarts


def test_the_shipped_demo_partner_recognises_fresh_whole_images() -> None:
    model, checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    held_out = DemoDataset(n_per_class=20, seed=12345, split="test")
    assert checkpoint["classes"] == held_out.classes
    with torch.inference_mode():
        predictions = model(held_out.images.float() / 255.0).argmax(1)
    assert (predictions == held_out.labels).float().mean() >= 0.9


def test_the_shipped_demo_partner_needs_bubbles_on_the_object() -> None:
    model, _ = load_checkpoint(DEMO_CHECKPOINT)
    held_out = DemoDataset(n_per_class=10, seed=54321, split="test")
    images, masks = held_out.images.float() / 255.0, held_out.masks.float()
    accuracy = {}
    for count in (0, 80):  # as the game renders them: noise everywhere but under the bubbles
        counts = torch.full((len(images),), count)
        seen = train.reveal(images, masks, counts, torch.Generator().manual_seed(count))
        with torch.inference_mode():
            accuracy[count] = (model(seen).argmax(1) == held_out.labels).float().mean()
    assert accuracy[0] <= 0.3  # it does not read the object through the noise
    assert accuracy[80] >= 0.5


def test_training_reveals_noise_a_decoy_outside_the_bubbles() -> None:
    decoys = torch.rand(2, 3, 224, 224)
    maps = torch.zeros(2, 1, 224, 224)
    maps[:, :, 100:120, 100:120] = 1.0
    counts = torch.tensor([3, 3])
    dark, bright = (
        train.reveal(torch.full((2, 3, 224, 224), value), maps, counts, torch.Generator().manual_seed(1), decoys)
        for value in (0.0, 1.0)
    )
    bubbles = dark != bright  # only the pixels under bubbles depend on the image itself
    assert bubbles[:, :, 110, 110].all()
    assert (dark[bubbles] == 0).all()
    assert 0 < bubbles.float().mean() < 0.1
