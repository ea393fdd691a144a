"""Tests for the procedural demo image set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_server import demo_data
from model_server.demo_data import CLASSES, IMAGE_SIZE, generate, save_demo_set


def _pixels(samples: list[demo_data.DemoSample]) -> list[bytes]:
    return [sample.image.tobytes() for sample in samples]


def test_it_is_deterministic_for_a_seed() -> None:
    first = list(generate(n_per_class=1, seed=3))
    second = list(generate(n_per_class=1, seed=3))
    assert _pixels(first) == _pixels(second)
    assert all((a.mask == b.mask).all() for a, b in zip(first, second, strict=True))


def test_different_seeds_give_different_images() -> None:
    first = _pixels(list(generate(n_per_class=1, seed=0)))
    second = _pixels(list(generate(n_per_class=1, seed=1)))
    assert not set(first) & set(second)


def test_train_and_test_splits_are_disjoint() -> None:
    train = _pixels(list(generate(n_per_class=2, split="train")))
    test = _pixels(list(generate(n_per_class=2, split="test")))
    assert not set(train) & set(test)


def test_samples_have_the_documented_shape_and_unique_names() -> None:
    samples = list(generate(n_per_class=2, seed=5))
    assert [s.class_name for s in samples[: len(CLASSES)]] == list(CLASSES)
    assert len({s.name for s in samples}) == len(samples)
    for sample in samples:
        assert sample.image.mode == "RGB"
        assert sample.image.size == (IMAGE_SIZE, IMAGE_SIZE)
        assert sample.mask.dtype == bool
        assert sample.mask.shape == (IMAGE_SIZE, IMAGE_SIZE)
        assert CLASSES[sample.label] == sample.class_name


def test_objects_are_inside_the_image_and_sized_within_bounds() -> None:
    for sample in generate(n_per_class=3, seed=7):
        rows, cols = np.nonzero(sample.mask)
        # Fully inside: the object never touches the border.
        assert min(rows.min(), cols.min()) > 0
        assert max(rows.max(), cols.max()) < IMAGE_SIZE - 1
        assert 0.05 <= sample.mask.mean() <= 0.25


def _background_means(background_cue: bool) -> tuple[np.ndarray, np.ndarray]:
    samples = list(generate(n_per_class=4, seed=2, background_cue=background_cue))
    means = np.stack([np.asarray(s.image, dtype=float)[~s.mask].mean(0) for s in samples])
    return means, np.array([s.label for s in samples])


def _between_over_within(means: np.ndarray, labels: np.ndarray) -> float:
    centroids = np.stack([means[labels == k].mean(0) for k in range(len(CLASSES))])
    within = ((means - centroids[labels]) ** 2).sum(1).mean()
    between = ((centroids - means.mean(0)) ** 2).sum(1).mean()
    return float(between / within)


def test_background_cue_makes_backgrounds_predict_the_class() -> None:
    plain = _between_over_within(*_background_means(False))
    cued = _between_over_within(*_background_means(True))
    assert cued > 5 * plain
    assert cued > 2


def test_background_cue_leaves_the_object_mask_unchanged() -> None:
    plain = list(generate(n_per_class=1, seed=4))
    cued = list(generate(n_per_class=1, seed=4, background_cue=True))
    assert all((a.mask == b.mask).all() for a, b in zip(plain, cued, strict=True))
    assert not set(_pixels(plain)) & set(_pixels(cued))


def test_save_demo_set_writes_class_folders_with_masks(tmp_path: Path) -> None:
    paths = save_demo_set(tmp_path, n_per_class=1, seed=1, split="test")
    assert len(paths) == len(CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CLASSES)
    sample = next(generate(n_per_class=1, seed=1, split="test"))
    mask = Image.open(tmp_path / sample.class_name / f"{sample.name}.mask.png")
    assert mask.mode == "L"
    assert set(np.unique(np.asarray(mask))) == {0, 255}
    assert (np.asarray(mask) > 0).tolist() == sample.mask.tolist()
    assert Image.open(paths[0]).tobytes() == sample.image.tobytes()


def test_an_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        next(generate(n_per_class=1, split="validation"))


def test_the_command_line_writes_the_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_data.main([str(tmp_path), "--per-class", "1", "--background-cue"])
    assert len(list(tmp_path.glob("*/*.mask.png"))) == len(CLASSES)
    assert "wrote 10 images" in capsys.readouterr().out
