"""`make evolve-demo`: the partner evolves in the live game, generation after generation, on the cue demo set.

Everything under one run directory (default `var/evolve-demo`, docs/evolution.md "The demonstration"):

1. the shortcut demonstration's image sets (`model_server.cotrain_demo.make_image_sets`: training
   images whose corner patch names the class, cue-conflict test images with a wrong class's patch);
2. generation 0: a GALA network trained on the cue training images alone (no maps), so it has
   learnt the shortcut;
3. a private site (as `bench.cotrain_demo`'s): `seed_demo`, the played training images imported as
   one study that evolves, generation 0 registered and promoted (`register_partner --promote`),
   gunicorn and the model server serving it (with an admin token);
4. per generation: `simulate_players` plays the study through the game's HTTP API (the game keeps
   answering throughout), then `evolve_partner` exports the maps, co-trains from the live
   partner, evaluates, gates and promotes; each live version is also evaluated on the
   cue-conflict images against their object masks;
5. `results.md` and `results.json`: per generation, the gate's numbers (accuracy with the reveal
   and alignment on the held-out images), whether it went live, and cue-conflict accuracy and
   alignment.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from bench.cotrain_demo import manage, play, site_env
from devtools.partner_process import ROOT, free_port, running, serve_partner, wait_until_ready
from model_server.cotrain_demo import DemoConfig, make_image_sets

PARTNER = "evolving-partner"  # its own partner: the demo study's plays ten classes, this one the demo's few
STUDY = "evolve-demo"

STUDY_SCRIPT = """
from games.models import Experiment, ImageSet, PartnerModel
demo = Experiment.objects.get(slug="demo")
study = Experiment.objects.get(pk=demo.pk)
study.pk = study.id = None
study.slug, study.title = {slug!r}, "The partner evolves"
study.image_set = ImageSet.objects.get(name={slug!r})
study.partner = PartnerModel.objects.get_or_create(name={partner!r})[0]
study.catch_trial_rate = 0.0
study.rounds_per_session = {rounds}
study.query_every = 30
study.evolve_every_maps = {every}
study.evolve_train_args = {train_args!r}
study.promotion_accuracy_margin = {margin}
study.save()
"""

NUMBERS = """
import json
from games.models import PartnerModelVersion
from evolution.models import Generation
rows = [{{"version": v.version, "generation": v.generation, "parent": v.parent.version if v.parent else None,
          "status": v.status, "reason": v.status_reason, "accuracy": v.accuracy,
          "accuracy_revealed": v.accuracy_revealed, "alignment": v.alignment, "export": v.export_id,
          "checkpoint": v.checkpoint, "rounds": v.rounds.count()}}
        for v in PartnerModelVersion.objects.filter(partner__name={partner!r}).exclude(checkpoint="")
        .order_by("generation", "created_at")]
gens = [{{"number": g.number, "status": g.status, "reason": g.reason, "maps_at_start": g.maps_at_start}}
        for g in Generation.objects.filter(experiment__slug={slug!r}).order_by("number")]
print(json.dumps({{"versions": rows, "generations": gens}}))
"""


def run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"{command[2]} failed; see {log}")


def conflict_scores(checkpoint: Path, images: Path, work: Path, log: Path) -> dict[str, float]:
    """Top-1 and attention alignment (against the object masks) on the cue-conflict images."""
    copy = work / f"{checkpoint.stem}.conflict.pt"
    shutil.copyfile(checkpoint, copy)  # evaluate writes into the file it evaluates
    run([sys.executable, "-m", "model_server.evaluate", str(copy), "--data", str(images), "--ceiling", "1",
         "--eval-bubbles", "10", "30"], log)  # fmt: skip
    result = json.loads(copy.with_name(copy.stem + ".eval.json").read_text())
    return {"top1": result["top1"], "alignment": (result.get("attention") or result["saliency"])["alignment"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="var/evolve-demo")
    parser.add_argument("--classes", nargs="+", default=list(DemoConfig().classes))
    parser.add_argument("--per-class", type=int, default=40, help="cue training images per class (generation 0)")
    parser.add_argument("--mapped-per-class", type=int, default=8, help="of them, played in the game")
    parser.add_argument("--test-per-class", type=int, default=10)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--players-per-image", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="generation 0's epochs")
    parser.add_argument("--evolve-epochs", type=int, default=15, help="each generation's epochs")
    parser.add_argument("--batch-size", type=int, default=8, help="each generation's (the played images are few)")
    parser.add_argument("--map-weight", type=float, default=DemoConfig.map_weight)
    parser.add_argument("--margin", type=float, default=0.05, help="promotion_accuracy_margin of the study")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    root = Path(args.run_dir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    log = root / "logs" / "demo.log"
    started = time.perf_counter()
    config = DemoConfig(run_dir=str(root), classes=tuple(args.classes), per_class=args.per_class,
                        mapped_per_class=args.mapped_per_class, test_per_class=args.test_per_class,
                        test_mapped_per_class=1)  # fmt: skip
    folders = make_image_sets(replace(config))
    model = [*config.model, "--no-augment-colour", "--threads", "2", "--eval-bubbles", "10", "30"]
    gen0 = root / "gen0.pt"
    print(f"generation 0: training on {args.per_class} cue images per class ...", flush=True)
    run([sys.executable, "-m", "model_server.train", *model, "--data", str(folders["train"]), "--epochs",
         str(args.epochs), "--batch-size", "32", "--lr", str(config.lr), "--version", "gen0", "--out", str(gen0)],
        log)  # fmt: skip

    token = secrets.token_urlsafe(32)
    env = site_env(root) | {"MODEL_SERVER_ADMIN_TOKEN": token, "EVOLUTION_ROOT": str(root / "evolution")}
    manage(env, log, "migrate", "--noinput")
    manage(env, log, "seed_demo", "--per-class", "1", "--no-progress")
    manage(env, log, "import_images", str(folders["train"].with_suffix(".csv")), "--image-set", STUDY,
           "--no-progress")  # fmt: skip
    images = args.mapped_per_class * len(args.classes)
    rounds = min(images, 20)
    train_args = [*model, "--epochs", str(args.evolve_epochs), "--batch-size", str(args.batch_size),
                  "--lr", str(config.lr / 4), "--map-weight", str(args.map_weight),
                  # the shortcut demonstration's co-training: the gate loss, gates trained by the maps alone
                  "--map-loss", config.map_loss, "--gate-learns-from", config.gate_learns_from]  # fmt: skip
    script = STUDY_SCRIPT.format(slug=STUDY, partner=PARTNER, rounds=rounds, every=images, margin=args.margin,
                                 train_args=train_args)  # fmt: skip
    manage(env, log, "shell", "-c", script)
    conflict = {"gen0": conflict_scores(gen0, folders["test-conflict"], root, log)}
    with ExitStack() as stack:
        partner = stack.enter_context(serve_partner(
            checkpoint=gen0, name=PARTNER, image_root=Path(env["MEDIA_ROOT"]), log_path=root / "logs" / "partner.log",
            workers=1, max_delay_ms=2, device="cpu"))  # fmt: skip
        wait_until_ready(partner, timeout=180)
        env["MODEL_SERVER_URL"] = partner.url
        manage(env, log, "register_partner", "--partner", PARTNER, "--checkpoint", str(gen0), "--promote", STUDY,
               "--user", "demo", "--reason", "generation 0: trained on the cue images alone")  # fmt: skip
        port = free_port()
        web = [sys.executable, "-m", "gunicorn", "clickme_site.wsgi", "--bind", f"127.0.0.1:{port}",
               "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--log-level", "warning"]  # fmt: skip
        site = stack.enter_context(running(web, url=f"http://127.0.0.1:{port}",
                                           ready_url=f"http://127.0.0.1:{port}/healthz",
                                           log_path=root / "logs" / "web.log", env=env))  # fmt: skip
        wait_until_ready(site, timeout=120)
        players = -(-args.players_per_image * images // rounds)
        for generation in range(1, args.generations + 1):
            phase = time.perf_counter()
            print(f"generation {generation}: {players} players x {rounds} rounds through the game ...", flush=True)
            play(env, log, "--url", site.url, "--experiment", STUDY, "--players", str(players), "--rounds",
                 str(rounds), "--concurrency", str(args.concurrency), "--seed", str(generation), "--think-ms", "0",
                 "--skip-rate", "0", "--no-progress")  # fmt: skip
            print(f"  played in {time.perf_counter() - phase:.0f} s; evolving ...", flush=True)
            try:
                manage(env, log, "evolve_partner", "--experiment", STUDY)
            except RuntimeError as failure:
                print(f"  generation {generation} failed: {str(failure)[-400:]}")
        printed = manage(env, log, "shell", "-c", NUMBERS.format(partner=PARTNER, slug=STUDY))
        numbers = json.loads(printed.strip().splitlines()[-1])  # the shell may say what it imported first
    for row in numbers["versions"]:
        if row["version"] not in conflict:
            conflict[row["version"]] = conflict_scores(Path(row["checkpoint"]), folders["test-conflict"], root, log)
    text = report(numbers, conflict, args, time.perf_counter() - started)
    (root / "results.md").write_text(text, encoding="utf-8")
    (root / "results.json").write_text(json.dumps({"numbers": numbers, "conflict": conflict}, indent=2) + "\n")
    chart(numbers, conflict, root / "results.png")
    print(text)


def chart(numbers: dict, conflict: dict, path: Path) -> None:
    """results.png: per version, accuracy and alignment on the held-out and the cue-conflict images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = numbers["versions"]
    labels = [f"g{row['generation']}\n{row['status']}" for row in versions]
    series = {
        "held-out top-1 with the reveal": [row["accuracy_revealed"] for row in versions],
        "held-out alignment": [row["alignment"] for row in versions],
        "cue-conflict top-1": [conflict.get(row["version"], {}).get("top1") for row in versions],
        "cue-conflict alignment": [conflict.get(row["version"], {}).get("alignment") for row in versions],
    }
    figure, axes = plt.subplots(figsize=(2 + 1.6 * len(versions), 3.6))
    for name, values in series.items():
        points = [(i, 100 * v) for i, v in enumerate(values) if v is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=name)
    axes.set_xticks(range(len(versions)), labels)
    axes.set_ylabel("percent")
    axes.set_title("The partner evolves: one point per version")
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(numbers: dict, conflict: dict, args: argparse.Namespace, wall: float) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    lines = [
        f"The partner evolves: {len(args.classes)} classes, {args.mapped_per_class} played images per class, "
        f"{args.players_per_image} participants per image per generation, co-training weight {args.map_weight}, "
        f"accuracy margin {args.margin}. Held-out: the export's validation split (gate); cue-conflict: "
        f"{args.test_per_class} images per class, alignment against the object masks.",
        "",
        "| generation | version | status | rounds played against it | top-1 with the reveal, held-out % "
        "| alignment, held-out % | cue-conflict top-1 % | cue-conflict alignment % |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in numbers["versions"]:
        scores = conflict.get(row["version"], {})
        lines.append(f"| {row['generation']} | {row['version']} | {row['status']} | {row['rounds']} | "
                     f"{pct(row['accuracy_revealed'])} | {pct(row['alignment'])} | {pct(scores.get('top1'))} | "
                     f"{pct(scores.get('alignment'))} |")  # fmt: skip
    lines += ["", "Generations: " + "; ".join(f"{g['number']} {g['status']} ({g['reason'][:160]})"
                                            for g in numbers["generations"])]  # fmt: skip
    lines += ["", f"Wall time: {wall / 60:.1f} min on {os.cpu_count()} cores."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
