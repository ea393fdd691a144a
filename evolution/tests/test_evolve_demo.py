"""`make evolve-demo`'s bookkeeping: which images generation 0 may train on, and the numbers its table shows."""

from argparse import Namespace
from pathlib import Path

from bench.evolve_demo import generation0_images, held_out_images, held_out_scores, report
from model_server.cotrain_demo import DemoConfig
from model_server.export_data import held_out

CONFIG = DemoConfig(classes=("square", "star"), per_class=12, mapped_per_class=4)


def study_folder(root: Path) -> Path:
    """A cue training folder as make_image_sets writes it (empty files: only the names matter here)."""
    for label in CONFIG.classes:
        (root / label).mkdir(parents=True)
        for index in range(CONFIG.per_class):
            (root / label / f"{label}_{index:04d}.png").touch()
            (root / label / f"{label}_{index:04d}.mask.png").touch()
    return root


def test_generation_zero_never_trains_on_an_image_the_gate_may_judge(tmp_path):
    folder = study_folder(tmp_path / "train")
    target = tmp_path / "generation-0"
    count = generation0_images(folder, target, held_out_images(CONFIG, 0.5))
    linked = {path.relative_to(target).as_posix() for path in target.rglob("*.png")}
    assert count == sum(not name.endswith(".mask.png") for name in linked) > 0
    for label in CONFIG.classes:
        for index in range(CONFIG.per_class):
            stem, played = f"{label}_{index:04d}", index < CONFIG.mapped_per_class
            # The export names a mapped image by its stem, one without a map by its path (export_data.py).
            names = [f"{label}/{stem}.png", stem] if played else [f"{label}/{stem}.png"]
            judged = any(held_out(name, 0, 0.5) for name in names)
            assert (f"{label}/{stem}.png" in linked) is not judged
            assert (f"{label}/{stem}.mask.png" in linked) is not judged


def test_a_version_without_its_own_evaluation_takes_the_gates_numbers_for_it():
    numbers = {
        "versions": [
            {"version": "gen0", "accuracy_revealed": None, "alignment": None},
            {"version": "g1", "accuracy_revealed": 0.5, "alignment": 0.6},
        ],
        "generations": [
            {"parent": "gen0", "numbers": {"live": {"accuracy_revealed": 0.4, "alignment": 0.1},
                                           "candidate": {"accuracy_revealed": 0.5, "alignment": 0.6}}},
        ],
    }  # fmt: skip
    assert held_out_scores(numbers) == {
        "gen0": {"accuracy_revealed": 0.4, "alignment": 0.1},
        "g1": {"accuracy_revealed": 0.5, "alignment": 0.6},
    }


def test_the_table_shows_both_versions_of_each_generation_and_the_outcome():
    gate = {
        "live": {"accuracy_revealed": 0.4, "alignment": 0.1},
        "candidate": {"accuracy_revealed": 0.45, "alignment": 0.6},
    }
    numbers = {
        "versions": [
            {"version": "gen0", "generation": 0, "status": "retired", "rounds": 80, "accuracy_revealed": None,
             "alignment": None},
            {"version": "g1", "generation": 1, "status": "live", "rounds": 0, "accuracy_revealed": 0.45,
             "alignment": 0.6},
        ],
        "generations": [{"number": 1, "status": "promoted", "reason": "passed", "maps_at_start": 80,
                         "parent": "gen0", "candidate": "g1", "numbers": gate}],
        "phases_s": {"generation 1 play": 120.0},
    }  # fmt: skip
    args = Namespace(classes=["square", "star"], mapped_per_class=4, val_fraction=0.5, players_per_image=5,
                     evolve_steps=450, batch_size=16, evolve_lr=0.004, map_weight=1.0, margin=0.05,
                     test_per_class=10)  # fmt: skip
    text = report(numbers, {"gen0": {"top1": 0.0, "revealed": 0.3, "alignment": -0.2}}, args, 600)
    assert "| 1 | 80 | gen0 | 40.0 | 10.0 | g1 | 45.0 | 60.0 | promoted |" in text
    assert "| 0 | gen0 | retired | 80 | 40.0 | 10.0 | 0.0 | 30.0 | -20.0 |" in text
    assert "generation 1 play 2.0" in text
