"""The shortcut demonstration's image sets, training runs and table (docs/training.md, "The shortcut demonstration").

Training images carry a class-coded background cue (the hue and stripe direction of the
background name the class); the test images come twice, with the same objects: cue-free, and
cue-conflict (the cue of a wrong class). Three networks per seed, the same steps each: a plain
GALA network trained on the cue images, the same network co-trained on the human maps of those
images, and a cue-free reference trained on the same objects without the cue. Each is evaluated
on both test sets; alignment is measured on the cue-conflict images against their human maps.

This module needs no Django: the human maps come in as exports. ``bench.cotrain_demo`` (``make
cotrain-demo``) makes them by playing the game over HTTP and then runs ``run_all`` here; given
exports, this runs alone:

    python -m model_server.cotrain_demo --run-dir var/cotrain-demo
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model_server.demo_data import save_demo_set

ROOT = Path(__file__).resolve().parent.parent
# Five of the demo shapes that differ in outline; fewer classes than the partner's ten make the
# shapes learnable in the minutes the demonstration has (docs/training.md).
CLASSES = ("square", "triangle", "star", "cross", "crescent")
KINDS = ("reference", "plain", "cotrained")
# Folder names under <run>/images: what each set is for, and its cue.
SETS = {"train": "patch", "train-free": "none", "test-free": "none", "test-conflict": "patch-conflict"}


@dataclass(frozen=True)
class DemoConfig:
    """Everything that sizes the demonstration; the defaults are the measured run (docs/training.md)."""

    run_dir: str = "var/cotrain-demo"
    classes: tuple[str, ...] = CLASSES
    per_class: int = 60  # training images per class
    mapped_per_class: int = 20  # of them, played in the game (so with human maps); the rest train the classifier
    test_per_class: int = 20  # cue-free and cue-conflict test images per class (the same objects)
    test_mapped_per_class: int = 6  # cue-conflict test images per class played (alignment is measured on them)
    image_seed: int = 13
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 50
    batch_size: int = 32
    lr: float = 4e-3
    # Co-training: hinges that shut the gates where people did not look (losses.gate_loss), and
    # gates trained by that loss alone, so the classifier cannot reopen them over the cue
    # (docs/training.md, "The shortcut demonstration").
    map_loss: str = "gate"
    map_weight: float = 1.0
    gate_learns_from: str = "maps"
    gate_warmup_steps: int = 0  # first steps with the map loss alone (train --gate-warmup-steps)
    # Where the gate loss shuts gates: below this share of the map's peak (train --gate-shut-below);
    # None keeps train's default. 1 % and 0.5 % measured no better (docs/training.md, "What was
    # tried against the shortcut").
    gate_shut_below: float | None = None
    # The network: the small GALA preset at the released code's input placement, scaled to 112 px,
    # with gates that can shut (hard) and see a 5x5 neighbourhood; GALA in the stages `gala_layers`.
    model: tuple[str, ...] = (
        *("--arch", "gala_small", "--resize", "112", "--placement", "input"),
        *("--nonlinearity", "hard", "--extra-conv"),
    )
    # layer2 only: gates in layer1 as well shut the object's outline at its finer grid, and the
    # co-trained network then learnt shapes worse (docs/training.md, "What was tried against the shortcut").
    gala_layers: tuple[int, ...] = (2,)
    parallel: int = 2  # training runs at once, one thread each
    extra: tuple[str, ...] = field(default_factory=tuple)  # more train flags (the quick test's sizes)

    @property
    def root(self) -> Path:
        """The run directory."""
        return Path(self.run_dir)


def make_image_sets(config: DemoConfig) -> dict[str, Path]:
    """Write the four image sets under <run>/images (skipped when already there); return their folders.

    Beside the training and cue-conflict folders, ``<name>.csv`` lists the images of each class
    that the game is to play (an ``import_images`` manifest: path, class, mask).
    """
    folders = {}
    for name, cue in SETS.items():
        folder = config.root / "images" / name
        count = config.per_class if name.startswith("train") else config.test_per_class
        done = folder / ".complete"
        if not done.exists():
            split = "train" if name.startswith("train") else "test"
            save_demo_set(folder, n_per_class=count, seed=config.image_seed, split=split, background_cue=cue,
                          classes=config.classes)  # fmt: skip
            done.write_text(json.dumps({"per_class": count, "cue": cue}) + "\n")
        folders[name] = folder
    for name, count in (("train", config.mapped_per_class), ("test-conflict", config.test_mapped_per_class)):
        rows = ["path,class,mask"]
        for index in range(count):
            for label in config.classes:
                stem = f"{label}/{label}_{index:04d}"
                rows.append(f"{name}/{stem}.png,{label},{name}/{stem}.mask.png")
        (config.root / "images" / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folders


def train_command(config: DemoConfig, kind: str, seed: int, train_export: Path) -> list[str]:
    """The ``model_server.train`` command of one run: every kind trains the same steps from the same seed."""
    images = config.root / "images"
    out = config.root / "runs" / f"{kind}-{seed}.pt"
    command = [sys.executable, "-m", "model_server.train", *config.model]
    command += ["--gala-layers", *map(str, config.gala_layers), "--seed", str(seed), "--out", str(out)]
    command += ["--epochs", str(config.epochs), "--batch-size", str(config.batch_size), "--lr", str(config.lr)]
    # No reveals (those are for a partner) and no colour augmentation (it would scramble the cue).
    command += ["--reveal-prob", "0", "--no-augment-colour", "--threads", "1", "--eval-bubbles", "10"]
    command += ["--version", f"cotrain-demo-{kind}-{seed}"]
    if kind == "reference":
        command += ["--data", str(images / "train-free")]  # the same objects, no cue
    else:
        command += ["--maps", str(train_export), "--images", str(images / "train"), "--val-fraction", "0"]
    if kind == "cotrained":
        command += ["--cotrain", "--map-loss", config.map_loss, "--map-weight", str(config.map_weight)]
        command += ["--gate-learns-from", config.gate_learns_from, "--gate-warmup-steps", str(config.gate_warmup_steps)]
        if config.gate_shut_below is not None:
            command += ["--gate-shut-below", str(config.gate_shut_below)]
    return [*command, *config.extra]


def evaluate_commands(config: DemoConfig, checkpoint: Path, test_export: Path) -> list[list[str]]:
    """Evaluate on the cue-conflict images (against their human maps) and on the cue-free ones."""
    images = config.root / "images"
    base = [sys.executable, "-m", "model_server.evaluate", str(checkpoint), "--eval-bubbles", "10"]
    conflict = [*base, "--maps", str(test_export), "--images", str(images / "test-conflict"), "--split", "all"]
    free = [*base, "--data", str(images / "test-free"), "--ceiling", "1"]
    return [[*conflict, "--tag", "conflict"], [*free, "--tag", "free"]]


def run_one(config: DemoConfig, kind: str, seed: int, exports: dict[str, Path]) -> dict[str, Any]:
    """Train and evaluate one network (subprocesses, output in <run>/logs); return its row."""
    logs = config.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    checkpoint = config.root / "runs" / f"{kind}-{seed}.pt"
    started = time.perf_counter()
    with (logs / f"{kind}-{seed}.log").open("w") as log:
        commands = [train_command(config, kind, seed, exports["train"])]
        commands += evaluate_commands(config, checkpoint, exports["test"])
        for command in commands:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            finished = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
            if finished.returncode:
                raise RuntimeError(f"{kind} seed {seed}: {command[2]} failed; see {logs / f'{kind}-{seed}.log'}")
    conflict = json.loads((checkpoint.parent / f"{kind}-{seed}.conflict.eval.json").read_text())
    free = json.loads((checkpoint.parent / f"{kind}-{seed}.free.eval.json").read_text())
    row = {"kind": kind, "seed": seed, "top1_free": free["top1"], "top1_conflict": conflict["top1"]}
    for source in ("attention", "saliency"):
        if source in conflict:
            row[f"alignment_{source}"] = conflict[source]["alignment"]
    row["ceiling"] = conflict["ceiling"]
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def run_all(config: DemoConfig, exports: dict[str, Path]) -> list[dict[str, Any]]:
    """Train and evaluate every kind on every seed, ``config.parallel`` at a time; return the rows."""
    jobs = [(kind, seed) for seed in config.seeds for kind in KINDS]
    rows = []
    with (
        ThreadPoolExecutor(max_workers=config.parallel) as pool,
        tqdm(total=len(jobs), desc="networks", unit="net") as bar,
    ):
        futures = [pool.submit(run_one, config, kind, seed, exports) for kind, seed in jobs]
        for future in futures:
            rows.append(future.result())
            bar.update()
            bar.set_postfix(last=f"{rows[-1]['kind']}-{rows[-1]['seed']}")
    bar.close()
    return rows


def mean_sd(values: Sequence[float]) -> str:
    """'mean ± sd' in percent (sd over seeds; 0 for one seed)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def checks(rows: list[dict[str, Any]], alignment: str) -> list[dict[str, Any]]:
    """The issue's "Done when" per seed: the gap, the share of it co-training closes, the alignment gain."""
    by = {(row["kind"], row["seed"]): row for row in rows}
    results = []
    for seed in sorted({row["seed"] for row in rows}):
        reference, plain, cotrained = (by[(kind, seed)] for kind in KINDS)
        gap = reference["top1_conflict"] - plain["top1_conflict"]
        closed = (cotrained["top1_conflict"] - plain["top1_conflict"]) / gap if gap > 0 else float("nan")
        gain = cotrained.get(alignment, float("nan")) - plain.get(alignment, float("nan"))
        results.append({
            "seed": seed, "gap_points": 100 * gap, "gap_ok": gap >= 0.30,
            "closed": closed, "closed_ok": closed >= 0.80,
            "alignment_gain_points": 100 * gain, "alignment_ok": gain >= 0.12,
        })  # fmt: skip
    return results


def table(rows: list[dict[str, Any]], config: DemoConfig, alignment: str) -> str:
    """The markdown table (mean ± sd over seeds) and the per-seed checks."""
    columns = [("top1_free", "cue-free top-1 %"), ("top1_conflict", "cue-conflict top-1 %"),
               ("alignment_attention", "alignment, attention %"),
               ("alignment_saliency", "alignment, saliency %")]  # fmt: skip
    lines = [
        f"Shortcut demonstration: {len(config.classes)} classes, {config.per_class} training and "
        f"{config.test_per_class} test images per class, seeds {', '.join(map(str, config.seeds))}; "
        f"co-training: {config.map_loss} loss, weight {config.map_weight}, gates trained by "
        f"{'the maps alone' if config.gate_learns_from == 'maps' else 'both losses'}. Alignment: mean Spearman "
        "(model map, human map) / split-half ceiling, on the cue-conflict images.",
        "",
        "| network | " + " | ".join(label for _, label in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for kind in KINDS:
        mine = [row for row in rows if row["kind"] == kind]
        cells = [mean_sd([row[key] for row in mine]) if all(key in row for row in mine) else "-" for key, _ in columns]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", f"Per seed (alignment: {alignment.removeprefix('alignment_')}):", "",
              "| seed | gap (points) | >= 30 | closed | >= 80 % | alignment gain (points) | >= 12 |",
              "|---:|---:|:-:|---:|:-:|---:|:-:|"]  # fmt: skip
    for check in checks(rows, alignment):
        mark = {True: "yes", False: "NO"}
        lines.append(
            f"| {check['seed']} | {check['gap_points']:.1f} | {mark[check['gap_ok']]} | {100 * check['closed']:.0f} % "
            f"| {mark[check['closed_ok']]} | {check['alignment_gain_points']:.1f} | {mark[check['alignment_ok']]} |"
        )
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> bool:
    """A bar chart of the table (mean, sd as error bars); False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    metrics = [(key, label) for key, label in (("top1_free", "cue-free top-1"), ("top1_conflict", "cue-conflict top-1"),
               ("alignment_attention", "alignment (attention)"), ("alignment_saliency", "alignment (saliency)"))
               if all(key in row for row in rows)]  # fmt: skip
    figure, axes = plt.subplots(figsize=(2.2 * len(metrics) + 2, 3.6))
    width = 0.8 / len(KINDS)
    for offset, kind in enumerate(KINDS):
        mine = [row for row in rows if row["kind"] == kind]
        means = [100 * statistics.fmean(row[key] for row in mine) for key, _ in metrics]
        sds = [100 * statistics.stdev([row[key] for row in mine]) if len(mine) > 1 else 0.0 for key, _ in metrics]
        axes.bar([i + offset * width for i in range(len(metrics))], means, width, yerr=sds, capsize=3, label=kind)
    axes.set_xticks([i + width for i in range(len(metrics))], [label for _, label in metrics])
    axes.set_ylabel("percent (mean ± sd over seeds)")
    axes.axhline(0, color="black", linewidth=0.5)
    axes.legend(frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def report(rows: list[dict[str, Any]], config: DemoConfig) -> str:
    """Write results.json, results.md and results.png under the run directory; return the markdown."""
    alignment = "alignment_attention" if config.map_loss in ("gala", "gate") else "alignment_saliency"
    text = table(rows, config, alignment)
    (config.root / "results.md").write_text(text, encoding="utf-8")
    payload = {"config": asdict(config), "rows": rows, "checks": checks(rows, alignment)}
    (config.root / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    chart(rows, config.root / "results.png")
    return text


def main(argv: list[str] | None = None) -> None:
    """Train and report from exports already made (``--train-export``, ``--test-export``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=DemoConfig.run_dir)
    parser.add_argument("--train-export", type=Path, help="default: <run>/exports/train")
    parser.add_argument("--test-export", type=Path, help="default: <run>/exports/test")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DemoConfig.seeds))
    args = parser.parse_args(argv)
    config = DemoConfig(run_dir=args.run_dir, seeds=tuple(args.seeds))
    exports = {"train": args.train_export or config.root / "exports" / "train",
               "test": args.test_export or config.root / "exports" / "test"}  # fmt: skip
    print(report(run_all(config, exports), config))


if __name__ == "__main__":
    main()
