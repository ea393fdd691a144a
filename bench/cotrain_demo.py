"""`make cotrain-demo`: human maps from the real game, then plain vs co-trained GALA on a shortcut benchmark.

One command, every step with a progress bar, everything under one run directory (default
`var/cotrain-demo`, docs/training.md "The shortcut demonstration"):

1. image sets (`model_server.cotrain_demo.make_image_sets`): training images whose background
   names the class, the same objects without the cue, and cue-free and cue-conflict test images;
2. a private site: its own SQLite database and media under the run directory, `manage.py migrate`,
   `seed_demo` (the demo partner and its owner), `import_images` for the training and cue-conflict
   sets, and one study per set (a copy of the demo study's settings, with `manage.py shell` as
   `bench.stack` makes its panel study: no command creates a study from an image set);
3. gunicorn and the partner model server (the demo partner, which knows the shapes), and
   `manage.py simulate_players` playing both studies through the game's HTTP API, until every
   image has `--players-per-image` participants;
4. `manage.py compute_reliability` (each map's split-half ceiling) and `manage.py export_dataset
   --formats maps_hdf5` for both studies;
5. `model_server.cotrain_demo.run_all`: per seed, the plain, co-trained and cue-free reference
   networks, evaluated on both test sets; `results.md`, `results.json` and `results.png`.

Steps 2-4 are skipped when their exports already exist (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from devtools.partner_process import DEMO_CHECKPOINT, ROOT, free_port, running, serve_partner, wait_until_ready
from model_server.cotrain_demo import DemoConfig, make_image_sets, report, run_all
from model_server.demo_data import DEMO_PARTNER

PARTNER = DEMO_PARTNER  # seed_demo's partner model; the demo checkpoint knows every shape
STUDIES = {"train": "cotrain-train", "test": "cotrain-conflict"}  # export name -> study slug (and image set)
IMAGE_SETS = {"train": "train", "test": "test-conflict"}  # export name -> folder under <run>/images

# Run with `manage.py shell -c`: one live study per image set, with the demo study's settings.
STUDY_SCRIPT = """
from games.models import Experiment, ImageSet
demo = Experiment.objects.get(slug="demo")
for slug in {slugs!r}:
    if Experiment.objects.filter(slug=slug).exists():
        continue
    study = Experiment.objects.get(pk=demo.pk)
    study.pk = study.id = None
    study.slug, study.title = slug, "Shortcut demonstration: " + slug
    study.image_set = ImageSet.objects.get(name=slug)
    study.catch_trial_rate = 0.0
    study.rounds_per_session = {rounds}
    study.target_maps_per_image = {players}
    # The partner looks every 30 bubbles instead of 10: a third of the guesses to compute, and
    # longer trails, so five participants make a fuller map.
    study.query_every = 30
    study.save()
"""


def site_env(root: Path) -> dict[str, str]:
    """The private site's settings: its own database, media and exports under the run directory."""
    env = {
        **os.environ,
        # A private development site on loopback: DEBUG serves static files without collectstatic.
        "DEBUG": "1",
        "SECRET_KEY": "cotrain-demo-only-" + secrets.token_urlsafe(40),
        "DATABASE_URL": f"sqlite:///{(root / 'site.sqlite3').resolve()}",
        "MEDIA_ROOT": str((root / "media").resolve()),
        "EXPORT_ROOT": str((root / "exports-site").resolve()),
        "EXPORT_SETTLE_SECONDS": "0",  # the players have finished when the export starts
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_ADDRESS_FACTOR": "100000",  # every player comes from 127.0.0.1
        # Simulated players start their rounds faster than people (a 429 fails simulate_players).
        "RATE_LIMIT_ROUNDS": "1000/10",
        "RATE_LIMIT_CLICKS": "10000/10",
        "RATE_LIMIT_GUESSES": "10000/10",
        "MODEL_SERVER_TIMEOUT_MS": "60000",  # two shared cores: a live guess may take longer than 1.5 s
    }
    env.pop("REDIS_URL", None)  # tasks (scoring, maps) run in the web process
    return env


def manage(env: dict[str, str], log: Path, *args: str) -> str:
    """Run one management command; its output goes to the log and is returned; a failure raises."""
    finished = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    with log.open("a") as handle:
        handle.write(f"$ manage.py {' '.join(args)}\n{finished.stdout}{finished.stderr}\n")
    if finished.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{(finished.stdout + finished.stderr)[-3000:]}")
    return finished.stdout


def play(env: dict[str, str], log: Path, *args: str) -> None:
    """`manage.py simulate_players`; a run whose only errors are live guesses that timed out (503) counts.

    On two shared cores the partner now and then misses even a 60 s deadline; the page then shows
    no guess and play goes on (docs/game-api.md), and every round is still stored and scored, which
    the command's own database check confirms.
    """
    try:
        manage(env, log, "simulate_players", *args)
    except RuntimeError as failure:
        report = log.read_text().rsplit("$ manage.py simulate_players", 1)[-1]
        errors = re.findall(r"^  (\S.*?)\s{2,}(\d+)\s+e\.g\.", report, re.M)
        checked = re.search(r"database check: (\d+) of (\d+) submitted rounds are scored", report)
        if not errors or any(kind != "guess 503" for kind, _ in errors) or not checked:
            raise
        if checked.group(1) != checked.group(2):
            raise failure


def collect_maps(config: DemoConfig, folders: dict[str, Path], args: argparse.Namespace) -> dict[str, Path]:
    """Steps 2-4: play both studies through the game and export their maps; return the export folders."""
    root = config.root
    exports = {name: root / "exports" / name for name in STUDIES}
    if all((folder / "maps.h5").exists() for folder in exports.values()):
        print(f"human maps: reusing {', '.join(map(str, exports.values()))}")
        return exports
    # A site whose setup finished, and studies already played, are kept (markers in <run>/logs):
    # an interrupted run goes on from the study it was playing.
    markers = root / "logs"
    markers.mkdir(parents=True, exist_ok=True)
    env, log = site_env(root), markers / "site.log"
    steps = tqdm(total=6 + 2 * len(STUDIES), desc="human maps", unit="step")
    if not (markers / "site-ready").exists() or not (root / "site.sqlite3").exists():
        for stale in ("site.sqlite3", "media", "exports-site", "exports"):
            path = root / stale
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for marker in markers.glob("played-*"):
            marker.unlink()
        manage(env, log, "migrate", "--noinput")
        steps.update()
        manage(env, log, "seed_demo", "--per-class", "1", "--no-progress")  # the partner, its owner, the demo study
        steps.update()
        for name, slug in STUDIES.items():
            manifest = folders[IMAGE_SETS[name]].with_suffix(".csv")  # the images to play (make_image_sets)
            manage(env, log, "import_images", str(manifest), "--image-set", slug, "--no-progress")
            steps.update()
        rounds = min(10, config.test_mapped_per_class * len(config.classes))
        script = STUDY_SCRIPT.format(slugs=list(STUDIES.values()), rounds=rounds, players=args.players_per_image)
        manage(env, log, "shell", "-c", script)
        (markers / "site-ready").touch()
    steps.update(5 - steps.n)
    with ExitStack() as stack:
        partner = stack.enter_context(
            serve_partner(checkpoint=DEMO_CHECKPOINT, name=PARTNER, image_root=Path(env["MEDIA_ROOT"]),
                          log_path=root / "logs" / "partner.log", workers=1, max_delay_ms=2, device="cpu")
        )  # fmt: skip
        wait_until_ready(partner, timeout=180)
        env["MODEL_SERVER_URL"] = partner.url
        port = free_port()
        web = [sys.executable, "-m", "gunicorn", "clickme_site.wsgi", "--bind", f"127.0.0.1:{port}",
               "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--log-level", "warning"]  # fmt: skip
        site = stack.enter_context(
            running(web, url=f"http://127.0.0.1:{port}", ready_url=f"http://127.0.0.1:{port}/healthz",
                    log_path=root / "logs" / "web.log", env=env)
        )  # fmt: skip
        wait_until_ready(site, timeout=120)
        steps.update()
        for name, slug in STUDIES.items():
            if (markers / f"played-{slug}").exists():
                steps.update()
                continue
            per_class = config.mapped_per_class if name == "train" else config.test_mapped_per_class
            images = per_class * len(config.classes)
            # Images are served breadth first (games.services.sampling.choose_image), so players x
            # rounds = players-per-image x images gives every image about that many participants.
            rounds = min(images, 20)
            players = -(-args.players_per_image * images // rounds)
            started = time.perf_counter()
            play(env, log, "--url", site.url, "--experiment", slug, "--players", str(players), "--rounds",
                 str(rounds), "--concurrency", str(args.concurrency), "--seed", str(config.image_seed),
                 "--think-ms", "0", "--skip-rate", "0", "--no-progress")  # fmt: skip
            (markers / f"played-{slug}").touch()
            steps.set_postfix(last=f"{slug}: {players * rounds} rounds in "
                              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            steps.update()
    for name, slug in STUDIES.items():
        manage(env, log, "compute_reliability", "--experiment", slug, "--iterations", "20")
        out = (root / "exports-site" / name).resolve()  # export_dataset --out wants an absolute path
        shutil.rmtree(out, ignore_errors=True)  # an interrupted run's export
        manage(env, log, "export_dataset", "--experiment", slug, "--formats", "maps_hdf5", "--out", str(out),
               "--no-progress")  # fmt: skip
        found = max(out.rglob("maps.h5"), key=lambda path: path.stat().st_mtime)
        exports[name].mkdir(parents=True, exist_ok=True)
        for file in found.parent.iterdir():
            shutil.copy2(file, exports[name] / file.name)
        steps.update()
    steps.close()
    return exports


def main(argv: list[str] | None = None) -> None:
    """Run the whole demonstration and print the table."""
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=defaults.run_dir)
    parser.add_argument("--per-class", type=int, default=defaults.per_class, help="training images per class")
    parser.add_argument("--mapped-per-class", type=int, default=defaults.mapped_per_class,
                        help="training images per class played in the game")  # fmt: skip
    parser.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    parser.add_argument("--test-mapped-per-class", type=int, default=defaults.test_mapped_per_class)
    parser.add_argument("--players-per-image", type=int, default=6,
                        help="participants per image (a map needs 5; one spare)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=4, help="simulated players at once")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--map-loss", default=defaults.map_loss, choices=["gala", "harmonization", "rrr", "gate"])
    parser.add_argument("--map-weight", type=float, default=defaults.map_weight)
    parser.add_argument("--gate-learns-from", default=defaults.gate_learns_from, choices=["all", "maps"],
                        help="what trains the gates: both losses, or the map loss alone")  # fmt: skip
    parser.add_argument("--gate-warmup-steps", type=int, default=defaults.gate_warmup_steps,
                        help="co-trained: first steps with the map loss alone")  # fmt: skip
    parser.add_argument("--gate-shut-below", type=float, default=defaults.gate_shut_below,
                        help="co-trained: shut gates below this share of a map's peak (train's default)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="every kind alike")
    parser.add_argument("--gala-layers", type=int, nargs="+", default=list(defaults.gala_layers),
                        help="the ResNet stages (1-4) with GALA, every kind alike (default 2)")  # fmt: skip
    parser.add_argument("--parallel", type=int, default=defaults.parallel, help="training runs at once")
    parser.add_argument("--fresh", action="store_true", help="remove the run directory first")
    parser.add_argument("--maps-only", action="store_true", help="stop once the human maps are exported")
    args = parser.parse_args(argv)
    config = replace(defaults, run_dir=args.run_dir, per_class=args.per_class, test_per_class=args.test_per_class,
                     mapped_per_class=args.mapped_per_class, test_mapped_per_class=args.test_mapped_per_class,
                     seeds=tuple(args.seeds), epochs=args.epochs, map_loss=args.map_loss, map_weight=args.map_weight,
                     gate_learns_from=args.gate_learns_from, gate_warmup_steps=args.gate_warmup_steps,
                     gate_shut_below=args.gate_shut_below, batch_size=args.batch_size,
                     gala_layers=tuple(args.gala_layers), parallel=args.parallel)  # fmt: skip
    if args.fresh:
        shutil.rmtree(config.root, ignore_errors=True)
    config.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    folders = make_image_sets(config)
    exports = collect_maps(config, folders, args)
    maps_done = time.perf_counter()
    if args.maps_only:
        print(f"human maps in {', '.join(map(str, exports.values()))} after {(maps_done - started) / 60:.1f} min")
        return
    rows = run_all(config, exports)
    text = report(rows, config)
    total = time.perf_counter() - started
    training = total - (maps_done - started)
    text += (f"\nWall time: {total / 60:.1f} min ({(maps_done - started) / 60:.1f} min images and human maps, "
             f"{training / 60:.1f} min training and evaluation) on {os.cpu_count()} cores.\n")  # fmt: skip
    (config.root / "results.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written: {config.root / 'results.md'}, results.json, results.png")


if __name__ == "__main__":
    main()
