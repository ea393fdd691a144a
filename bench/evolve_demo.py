"""`make evolve-demo`: the partner evolves in the live game, generation after generation, on the cue demo set.

Everything under one run directory (default `var/evolve-demo`, docs/evolution.md "The demonstration"):

1. the shortcut demonstration's image sets (`model_server.cotrain_demo.make_image_sets`: training
   images whose corner patch names the class, cue-conflict test images with a wrong class's patch);
2. generation 0: a GALA network trained on the cue training images alone (no maps), so it has
   learnt the shortcut; the study's images the export's split may hold out are left out of its
   training, so the gate judges every version on images none of them was trained on;
3. a private site (as `bench.cotrain_demo`'s): `seed_demo`, every cue training image imported as
   one study that evolves (only `--mapped-per-class` of them served, the others retired: they train
   each generation's classifier without maps), generation 0 registered and promoted
   (`register_partner --promote`), gunicorn and the model server serving it (with an admin token);
4. per generation: `simulate_players` plays the study through the game's HTTP API (the game keeps
   answering throughout), `compute_reliability` gives each map its split-half ceiling, then
   `evolve_partner` exports the maps, co-trains from the live partner, evaluates, gates and
   promotes; every version is also evaluated on the cue-conflict images against their object masks;
5. `results.md`, `results.json` and `results.png`: per generation, the gate's numbers for the live
   version and the candidate on the same held-out images (accuracy with the reveal, alignment),
   whether the candidate went live, and every version's cue-conflict accuracy and alignment.
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
from model_server.export_data import held_out

PARTNER = "evolving-partner"  # its own partner: the demo study's plays ten classes, this one the demo's few
STUDY = "evolve-demo"

STUDY_SCRIPT = """
from games.models import Experiment, Image, ImageSet, PartnerModel
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
# The game serves only the played images: there is no time to play every cue image. The others stay
# in the study's image set, not served (retired), and so train each generation's classifier as
# images without maps do (docs/evolution.md, "The demonstration").
unplayed = Image.objects.filter(image_set=study.image_set).exclude(name__in={played!r})
unplayed.update(state=Image.State.RETIRED)
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
def gate_numbers(generation):
    decision = generation.candidate.decisions.filter(kind="gate").first() if generation.candidate else None
    return decision.numbers if decision else None
gens = [{{"number": g.number, "status": g.status, "reason": g.reason, "maps_at_start": g.maps_at_start,
          "parent": g.parent.version if g.parent else None, "candidate": g.candidate.version if g.candidate else None,
          "numbers": gate_numbers(g)}}
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
    """Top-1 (whole, and with the reveal on the object masks) and attention alignment on the cue-conflict images."""
    copy = work / f"{checkpoint.stem}.conflict.pt"
    shutil.copyfile(checkpoint, copy)  # evaluate writes into the file it evaluates
    run([sys.executable, "-m", "model_server.evaluate", str(copy), "--data", str(images), "--ceiling", "1",
         "--eval-bubbles", "10", "30"], log)  # fmt: skip
    result = json.loads(copy.with_name(copy.stem + ".eval.json").read_text())
    revealed = list(result["revealed"].values())
    return {
        "top1": result["top1"],
        "revealed": sum(revealed) / len(revealed),
        "alignment": (result.get("attention") or result["saliency"])["alignment"],
    }


def held_out_images(config: DemoConfig, val_fraction: float) -> set[str]:
    """The study's images (class/stem) the export's split may hold out: the gate judges versions on them.

    The split hashes an image's export name: a mapped image's stem, or the path under the
    generation's images of one without a map (model_server/export_data.py). A played image is held
    out under either name (one that got too few players for a map is named by its path); an unplayed
    one has no map, so only its path counts.
    """
    names = set()
    for index in range(config.per_class):
        for label in config.classes:
            stem = f"{label}_{index:04d}"
            path_out = held_out(f"{label}/{stem}.png", 0, val_fraction)
            if path_out or (index < config.mapped_per_class and held_out(stem, 0, val_fraction)):
                names.add(f"{label}/{stem}")
    return names


def study_manifest(config: DemoConfig) -> Path:
    """An import_images manifest of every cue training image (the study's image set); return its path."""
    rows = ["path,class,mask"]
    for index in range(config.per_class):
        for label in config.classes:
            stem = f"{label}/{label}_{index:04d}"
            rows.append(f"train/{stem}.png,{label},train/{stem}.mask.png")
    path = config.root / "images" / "study.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def generation0_images(folder: Path, target: Path, leave_out: set[str]) -> int:
    """Link the cue training images (and their masks) into target, but those in leave_out; return the images."""
    count = 0
    for path in sorted(folder.rglob("*.png")):
        stem = path.name.removesuffix(".mask.png").removesuffix(".png")
        if f"{path.parent.name}/{stem}" in leave_out:
            continue
        link = target / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve())
        count += not path.name.endswith(".mask.png")
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="var/evolve-demo")
    parser.add_argument("--classes", nargs="+", default=list(DemoConfig().classes))
    parser.add_argument("--per-class", type=int, default=40, help="cue training images per class (generation 0)")
    parser.add_argument("--mapped-per-class", type=int, default=16, help="of them, played in the game (the study)")
    parser.add_argument("--test-per-class", type=int, default=10)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--players-per-image", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="generation 0's epochs")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="share of the played images held out for the gate (generation 0's and every generation's)",
    )
    parser.add_argument("--evolve-steps", type=int, default=450, help="each generation's training steps")
    parser.add_argument("--batch-size", type=int, default=16, help="each generation's (the played images are few)")
    parser.add_argument("--evolve-lr", type=float, default=DemoConfig.lr, help="each generation's peak lr")
    parser.add_argument("--map-weight", type=float, default=DemoConfig.map_weight)
    parser.add_argument("--margin", type=float, default=0.05, help="promotion_accuracy_margin of the study")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training")
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        parser.error("--val-fraction must be between 0 and 1")
    if min(args.evolve_steps, args.batch_size, args.mapped_per_class, args.generations) < 1:
        parser.error("--evolve-steps, --batch-size, --mapped-per-class and --generations must be at least 1")
    if args.mapped_per_class > args.per_class:
        parser.error("--mapped-per-class cannot be more than --per-class")
    root = Path(args.run_dir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    log = root / "logs" / "demo.log"
    started = time.perf_counter()
    phases: dict[str, float] = {}
    config = DemoConfig(run_dir=str(root), classes=tuple(args.classes), per_class=args.per_class,
                        mapped_per_class=args.mapped_per_class, test_per_class=args.test_per_class,
                        test_mapped_per_class=1)  # fmt: skip
    folders = make_image_sets(replace(config))
    # Every version is trained and judged with the same split (docs/evolution.md, "Not done yet").
    split = ["--val-fraction", str(args.val_fraction), "--seed", "0"]
    model = [*config.model, "--no-augment-colour", "--threads", str(args.threads), "--eval-bubbles", "10", "30"]
    leave_out = held_out_images(config, args.val_fraction)
    held = root / "images" / "generation-0"
    trained_on = generation0_images(folders["train"], held, leave_out)
    gen0 = root / "gen0.pt"
    phase = time.perf_counter()
    print(f"generation 0: training on {trained_on} cue images (the study's {len(leave_out)} held out) ...", flush=True)
    run([sys.executable, "-m", "model_server.train", *model, *split, "--data", str(held), "--epochs",
         str(args.epochs), "--batch-size", "32", "--lr", str(config.lr), "--version", "gen0", "--out", str(gen0)],
        log)  # fmt: skip
    phases["generation 0 training"] = time.perf_counter() - phase

    token = secrets.token_urlsafe(32)
    env = site_env(root) | {"MODEL_SERVER_ADMIN_TOKEN": token, "EVOLUTION_ROOT": str(root / "evolution")}
    manage(env, log, "migrate", "--noinput")
    manage(env, log, "seed_demo", "--per-class", "1", "--no-progress")
    manage(env, log, "import_images", str(study_manifest(config)), "--image-set", STUDY, "--no-progress")
    images = args.mapped_per_class * len(args.classes)
    played = [f"{label}_{index:04d}" for index in range(args.mapped_per_class) for label in args.classes]
    rounds = min(images, 20)
    # Enough epochs for the steps asked: a generation trains on all the study's images outside the split.
    per_epoch = max(1, (args.per_class * len(args.classes) - len(leave_out)) // args.batch_size)
    epochs = -(-args.evolve_steps // per_epoch)
    train_args = [*model, *split, "--epochs", str(epochs), "--batch-size", str(args.batch_size),
                  "--lr", str(args.evolve_lr), "--map-weight", str(args.map_weight),
                  # the shortcut demonstration's co-training: the gate loss, gates trained by the maps alone
                  "--map-loss", config.map_loss, "--gate-learns-from", config.gate_learns_from]  # fmt: skip
    script = STUDY_SCRIPT.format(slug=STUDY, partner=PARTNER, rounds=rounds, every=images, margin=args.margin,
                                 train_args=train_args, played=played)  # fmt: skip
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
            phases[f"generation {generation} play"] = time.perf_counter() - phase
            print(f"  played in {phases[f'generation {generation} play']:.0f} s; evolving ...", flush=True)
            phase = time.perf_counter()
            manage(env, log, "compute_reliability", "--experiment", STUDY, "--iterations", "20")
            try:
                manage(env, log, "evolve_partner", "--experiment", STUDY)
            except RuntimeError as failure:
                print(f"  generation {generation} failed: {str(failure)[-400:]}")
            phases[f"generation {generation} evolve"] = time.perf_counter() - phase
            print(f"  evolved in {phases[f'generation {generation} evolve']:.0f} s", flush=True)
        printed = manage(env, log, "shell", "-c", NUMBERS.format(partner=PARTNER, slug=STUDY))
        numbers = json.loads(printed.strip().splitlines()[-1])  # the shell may say what it imported first
    for row in numbers["versions"]:
        if row["version"] not in conflict:
            conflict[row["version"]] = conflict_scores(Path(row["checkpoint"]), folders["test-conflict"], root, log)
    numbers["classes"] = len(args.classes)
    numbers["phases_s"] = {name: round(seconds, 1) for name, seconds in phases.items()}
    text = report(numbers, conflict, args, time.perf_counter() - started)
    (root / "results.md").write_text(text, encoding="utf-8")
    (root / "results.json").write_text(json.dumps({"numbers": numbers, "conflict": conflict}, indent=2) + "\n")
    chart(numbers, conflict, root / "results.png")
    print(text)


def held_out_scores(numbers: dict) -> dict[str, dict]:
    """Per version, its accuracy with the reveal and alignment on the study's held-out images.

    A candidate's are its own evaluation; a version that went live without one (generation 0)
    takes the gate's numbers for it from the first generation that judged a candidate against it.
    """
    scores = {row["version"]: {"accuracy_revealed": row["accuracy_revealed"], "alignment": row["alignment"]}
              for row in numbers["versions"] if row["alignment"] is not None}  # fmt: skip
    for generation in numbers["generations"]:
        live = (generation.get("numbers") or {}).get("live")
        if live and generation["parent"] not in scores:
            scores[generation["parent"]] = {key: live.get(key) for key in ("accuracy_revealed", "alignment")}
    return scores


def chart(numbers: dict, conflict: dict, path: Path) -> None:
    """results.png: per version, in order, alignment and accuracy with the reveal (held-out and cue-conflict)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions, held = numbers["versions"], held_out_scores(numbers)
    labels = [f"{row['version']}\n(g{row['generation']}, {row['status']})" for row in versions]
    series = {
        "held-out alignment (gate)": ([held.get(row["version"], {}).get("alignment") for row in versions], "-"),
        "held-out top-1 with the reveal (gate)": (
            [held.get(row["version"], {}).get("accuracy_revealed") for row in versions], "-"),
        "cue-conflict alignment": ([conflict.get(row["version"], {}).get("alignment") for row in versions], "--"),
        "cue-conflict top-1": ([conflict.get(row["version"], {}).get("top1") for row in versions], "--"),
    }  # fmt: skip
    figure, axes = plt.subplots(figsize=(3 + 2.2 * len(versions), 4))
    for name, (values, style) in series.items():
        points = [(i, 100 * v) for i, v in enumerate(values) if v is not None]
        if points:
            axes.plot(*zip(*points, strict=True), style, marker="o", label=name)
    axes.axhline(100 / numbers["classes"], color="grey", lw=0.8, ls=":", label="chance (top-1)")
    axes.set_xticks(range(len(versions)), labels, fontsize=8)
    axes.set_ylabel("percent (alignment: of the split-half ceiling)")
    axes.set_title("The partner evolves: one point per version, in the order they were made")
    axes.legend(frameon=False, fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(numbers: dict, conflict: dict, args: argparse.Namespace, wall: float) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    held = held_out_scores(numbers)
    lines = [
        f"The partner evolves: {len(args.classes)} classes, {args.mapped_per_class} played images per class "
        f"({100 * args.val_fraction:.0f} % held out for the gate), {args.players_per_image} participants per image "
        f"per generation; each generation {args.evolve_steps} steps at batch {args.batch_size}, peak lr "
        f"{args.evolve_lr}, gate loss weight {args.map_weight}, gates trained by the maps alone; accuracy margin "
        f"{args.margin}. Held-out: the played images of the export's split (alignment: Spearman with the human "
        f"maps over their split-half ceiling); cue-conflict: {args.test_per_class} images per class, alignment "
        "against the object masks.",
        "",
        "The gate, per generation (both versions on the same held-out images, that generation's maps):",
        "",
        "| generation | maps at start | live version | its top-1 with the reveal % | its alignment % | candidate "
        "| its top-1 with the reveal % | its alignment % | outcome |",
        "|---:|---:|---|---:|---:|---|---:|---:|---|",
    ]
    for generation in numbers["generations"]:
        gate = generation.get("numbers") or {}
        live, candidate = gate.get("live") or {}, gate.get("candidate") or {}
        lines.append(
            f"| {generation['number']} | {generation['maps_at_start']} | {generation['parent']} | "
            f"{pct(live.get('accuracy_revealed'))} | {pct(live.get('alignment'))} | {generation['candidate'] or '—'} | "
            f"{pct(candidate.get('accuracy_revealed'))} | {pct(candidate.get('alignment'))} | {generation['status']} |"
        )
    lines += [
        "",
        "Every version:",
        "",
        "| generation | version | status | rounds played against it | held-out top-1 with the reveal % "
        "| held-out alignment % | cue-conflict top-1 % | cue-conflict top-1 with the reveal % "
        "| cue-conflict alignment % |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in numbers["versions"]:
        scores, mine = conflict.get(row["version"], {}), held.get(row["version"], {})
        lines.append(f"| {row['generation']} | {row['version']} | {row['status']} | {row['rounds']} | "
                     f"{pct(mine.get('accuracy_revealed'))} | {pct(mine.get('alignment'))} | "
                     f"{pct(scores.get('top1'))} | {pct(scores.get('revealed'))} | "
                     f"{pct(scores.get('alignment'))} |")  # fmt: skip
    lines += ["", "Generations: " + "; ".join(f"{g['number']} {g['status']} ({g['reason'][:200]})"
                                            for g in numbers["generations"])]  # fmt: skip
    phases = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in numbers.get("phases_s", {}).items())
    lines += ["", f"Wall time: {wall / 60:.1f} min on {os.cpu_count()} cores ({phases} min)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
