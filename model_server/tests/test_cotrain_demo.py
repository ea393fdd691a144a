"""The shortcut demonstration, shortened: image sets -> exports -> train three kinds -> evaluate -> table and chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_server import cotrain_demo
from model_server.demo_data import PATCH_SIZE, cue_label
from model_server.tests.test_export_data import write_export

TINY = ("--widths", "4", "8", "8", "8", "--stem-width", "8")


def test_the_cue_names_the_class_in_training_and_a_wrong_class_in_conflict() -> None:
    assert [cue_label(2, index, "class", 5) for index in range(4)] == [2, 2, 2, 2]
    wrong = [cue_label(2, index, "conflict", 5) for index in range(4)]
    assert sorted(wrong) == [0, 1, 3, 4]  # every other class in turn
    assert cue_label(2, 0, "none", 5) is None
    with pytest.raises(ValueError, match="cue"):
        cue_label(2, 0, "sometimes")


def test_image_sets_share_their_objects_and_differ_by_the_patch(tmp_path: Path) -> None:
    config = cotrain_demo.DemoConfig(run_dir=str(tmp_path), per_class=2, mapped_per_class=1, test_per_class=2,
                                     test_mapped_per_class=1, classes=("square", "star"))  # fmt: skip
    folders = cotrain_demo.make_image_sets(config)
    assert set(folders) == set(cotrain_demo.SETS)
    for name in ("train", "test-conflict"):
        manifest = (tmp_path / "images" / f"{name}.csv").read_text().splitlines()
        assert manifest[0] == "path,class,mask" and len(manifest) == 1 + 2  # one image of each class
        path = tmp_path / "images" / manifest[1].split(",")[0]
        assert path.exists() and path.with_name(path.stem + ".mask.png").exists()
    cued, free = (np.asarray(Image.open(folders[n] / "star" / "star_0000.png"), float) for n in ("train", "train-free"))
    mask = np.asarray(Image.open(folders["train"] / "star" / "star_0000.mask.png")) > 127
    changed = np.abs(cued - free).max(2) > 0
    assert not changed[mask].any()  # the same object, pixel for pixel
    ys, xs = np.nonzero(changed)  # and the same background but for the patch, one square
    assert changed.sum() >= PATCH_SIZE**2 // 2
    assert ys.max() - ys.min() < PATCH_SIZE and xs.max() - xs.min() < PATCH_SIZE


def test_a_short_demonstration_trains_evaluates_and_reports(tmp_path: Path) -> None:
    config = cotrain_demo.DemoConfig(
        run_dir=str(tmp_path), per_class=4, mapped_per_class=2, test_per_class=2, test_mapped_per_class=2,
        classes=("square", "star"), seeds=(0, 1), epochs=1, batch_size=4, parallel=2, extra=TINY,
    )  # fmt: skip
    folders = cotrain_demo.make_image_sets(config)
    # Object masks stand in for the human maps the game would give (bench.cotrain_demo plays it).
    exports = {"train": tmp_path / "exports" / "train", "test": tmp_path / "exports" / "test"}
    train_images = sorted(folders["train"].rglob("*_000[01].png"))  # the mapped ones
    write_export(exports["train"], [*train_images, train_images[0]], "hdf5")  # write_export skips the last
    test_images = sorted(folders["test-conflict"].rglob("*_000[01].png"))
    write_export(exports["test"], [*test_images, test_images[0]], "hdf5")

    rows = cotrain_demo.run_all(config, exports)
    assert sorted((row["kind"], row["seed"]) for row in rows) == sorted(
        (kind, seed) for kind in cotrain_demo.KINDS for seed in (0, 1)
    )
    for row in rows:
        assert 0 <= row["top1_free"] <= 1 and 0 <= row["top1_conflict"] <= 1
        assert {"alignment_attention", "alignment_saliency"} <= set(row)
        assert row["ceiling"] == pytest.approx(0.8)  # the export's split-half Spearman
        assert (tmp_path / "runs" / f"{row['kind']}-{row['seed']}.conflict.eval.png").exists()
    text = cotrain_demo.report(rows, config)
    assert "| cotrained |" in text and "| reference |" in text and "alignment gain" in text
    assert (tmp_path / "results.md").read_text() == text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["rows"]) == 6 and {check["seed"] for check in saved["checks"]} == {0, 1}
    assert set(saved["checks"][0]) >= {"gap_points", "closed", "alignment_gain_points", "gap_ok"}
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_every_kind_trains_the_same_steps_and_only_the_cotrained_one_learns_from_the_maps() -> None:
    config = cotrain_demo.DemoConfig(gate_shut_below=0.01, gala_layers=(2, 3))
    commands = {kind: cotrain_demo.train_command(config, kind, 1, Path("exports/train")) for kind in cotrain_demo.KINDS}

    def flag(command: list[str], name: str) -> str:
        return command[command.index(name) + 1]

    for name in ("--seed", "--epochs", "--batch-size", "--lr", "--arch"):
        assert len({flag(command, name) for command in commands.values()}) == 1, name
    for command in commands.values():
        at = command.index("--gala-layers")
        assert command[at + 1 : at + 4] == ["2", "3", "--seed"]  # the stages, every kind alike
    cotrained = commands["cotrained"]
    assert flag(cotrained, "--gate-shut-below") == str(config.gate_shut_below)
    assert flag(cotrained, "--gate-learns-from") == "maps"
    for kind in ("plain", "reference"):
        assert "--cotrain" not in commands[kind] and "--gate-shut-below" not in commands[kind]
    assert flag(commands["reference"], "--data").endswith("train-free")  # the same objects, no cue
    default = cotrain_demo.train_command(cotrain_demo.DemoConfig(), "cotrained", 1, Path("exports/train"))
    assert "--gate-shut-below" not in default  # train's own default applies
