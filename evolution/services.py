"""Generations of an experiment's partner: export -> co-train -> evaluate -> gate -> promote (docs/evolution.md).

Training and evaluation run as processes of their own (`python -m model_server.train`,
`python -m model_server.evaluate`), started from the `evolve_partner` command's process, never from
a web or scoring worker. The live partner changes only in the last step, through the gate
(`games.services.partners.decide`), so a generation that fails or is interrupted anywhere before
leaves it as it was and records why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from evolution.models import Generation
from games.models import Experiment, PartnerModelVersion, Round
from games.services import partners
from maps.export_jobs import create_export, export_path, run_export

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Flags the evolution sets itself; an experiment's evolve_train_args may not override them.
RESERVED_FLAGS = ("--init", "--init-resnet", "--maps", "--images", "--out", "--version", "--resume", "--data", "--demo")


class EvolutionRefused(Exception):
    """A generation cannot start now; the message says why (nothing was changed)."""


# --- when -------------------------------------------------------------------------------------


def valid_maps(experiment: Experiment) -> int:
    """The experiment's valid maps: one per counting round (a participant's map of an image), as the game counts."""
    return Round.objects.counting().filter(experiment=experiment).count()


def new_maps(experiment: Experiment) -> int:
    """Valid maps beyond those there were when the last generation started (whatever its outcome)."""
    last = Generation.objects.filter(experiment=experiment).order_by("-number").first()
    return max(0, valid_maps(experiment) - (last.maps_at_start if last else 0))


def maps_until_next(experiment: Experiment) -> int | None:
    """How many more new maps before the next generation is due; None when the experiment never evolves."""
    if not experiment.evolve_every_maps:
        return None
    return max(0, experiment.evolve_every_maps - new_maps(experiment))


def is_due(experiment: Experiment) -> bool:
    return bool(experiment.evolve_every_maps) and maps_until_next(experiment) == 0


def check_train_args(args: object) -> list[str]:
    """An experiment's extra training flags: a list of strings, none of the flags the evolution sets."""
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise EvolutionRefused("evolve_train_args must be a list of strings (command-line flags)")
    clash = sorted({arg.split("=", 1)[0] for arg in args} & set(RESERVED_FLAGS))
    if clash:
        raise EvolutionRefused(f"evolve_train_args may not set {', '.join(clash)}: each generation sets them")
    return list(args)


# --- one at a time ------------------------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def reap_interrupted(experiment: Experiment) -> int:
    """Mark failed the running generations of this host whose process is gone (killed, machine restarted)."""
    reaped = 0
    running = Generation.objects.filter(experiment=experiment, status=Generation.Status.RUNNING)
    for generation in running.filter(host=socket.gethostname()):
        if generation.pid and not _process_alive(generation.pid):
            reason = f"interrupted: its process {generation.pid} ended without finishing"
            reaped += _finish(generation, Generation.Status.FAILED, reason)
    return reaped


def start_generation(experiment: Experiment, *, if_due: bool = False) -> Generation:
    """Record the experiment's next generation as running in this process, or refuse (EvolutionRefused).

    The experiment's row is locked while deciding, and the database keeps one running generation
    per experiment, so two starts at once give one generation and one refusal.
    """
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().select_related("partner").get(pk=experiment.pk)
        reap_interrupted(experiment)
        running = Generation.objects.filter(experiment=experiment, status=Generation.Status.RUNNING).first()
        if running is not None:
            raise EvolutionRefused(f"{running} started at {running.started_at:%Y-%m-%d %H:%M} is still running")
        if if_due and not is_due(experiment):
            raise EvolutionRefused(f"not due: {maps_until_next(experiment)} more new maps needed")
        check_train_args(experiment.evolve_train_args)
        live = partners.live_version(experiment.partner)
        if live is None or not live.checkpoint:
            raise EvolutionRefused(
                f"{experiment.partner} has no live version with a checkpoint to evolve from: "
                "register one and promote it first (register_partner --promote)"
            )
        number = (Generation.objects.filter(experiment=experiment).aggregate(n=Max("number"))["n"] or 0) + 1
        directory = Path(settings.EVOLUTION_ROOT) / experiment.slug / f"generation-{number}"
        try:
            with transaction.atomic():
                return Generation.objects.create(
                    experiment=experiment, number=number, parent=live, maps_at_start=valid_maps(experiment),
                    directory=str(directory), host=socket.gethostname(), pid=os.getpid(),
                )  # fmt: skip
        except IntegrityError as error:  # another process won the race
            raise EvolutionRefused(f"another generation of {experiment} has just started") from error


def _finish(generation: Generation, status: str, reason: str, **fields: Any) -> int:
    """Close a running generation (only if it is still running: a reaper may have closed it)."""
    return Generation.objects.filter(pk=generation.pk, status=Generation.Status.RUNNING).update(
        status=status, reason=reason[:10_000], finished_at=timezone.now(), **fields
    )


# --- the steps ----------------------------------------------------------------------------------


class StepFailed(RuntimeError):
    """A step's process failed; the message names the step and ends with its last log line."""


def _run_step(name: str, command: list[str], log: Path) -> None:
    """Run one step's process to its end, its output in `log`; StepFailed unless it exits 0."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as out:
        out.write(" ".join(command) + "\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=settings.BASE_DIR)
        try:
            code = process.wait(timeout=settings.EVOLUTION_STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StepFailed(f"{name} took over {settings.EVOLUTION_STEP_TIMEOUT_S} s (log: {log})") from None
        except BaseException:  # interrupted ourselves: never leave a training process behind
            process.kill()
            process.wait()
            raise
    if code != 0:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        raise StepFailed(f"{name} exited with {code}: {lines[-1] if lines else 'no output'} (log: {log})")


def write_images(experiment: Experiment, folder: Path) -> int:
    """The experiment's image crops as files training finds by their export name (model_server/export_data.py)."""
    count = 0
    for image in experiment.image_set.images.select_related("category").iterator():
        name = image.name if image.name.lower().endswith(IMAGE_SUFFIXES) else f"{image.name}.png"
        path = folder / image.category.name / name if "/" not in name else folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with image.crop.open("rb") as source, path.open("wb") as target:
            shutil.copyfileobj(source, target)
        count += 1
    return count


def _evaluate(checkpoint: Path, export_dir: Path, images: Path, log: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "model_server.evaluate", str(checkpoint), "--maps", str(export_dir),
               "--images", str(images)]  # fmt: skip
    _run_step(f"evaluating {checkpoint.name}", command, log)
    return json.loads(checkpoint.with_name(checkpoint.name.removesuffix(".pt") + ".eval.json").read_text())


def run_generation(generation: Generation) -> Generation:
    """Run a started generation to its end: promoted, refused by the gate, or failed with the reason.

    Any error or interruption (SIGTERM, Ctrl-C) closes it as failed and leaves the live partner as
    it was; a candidate registered before the failure is marked failed too, so it can never go live
    by accident. Returns the generation as it ended.
    """
    experiment = generation.experiment
    directory = Path(generation.directory)
    candidate: PartnerModelVersion | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        export = create_export(experiment=experiment, user=experiment.owner, formats=["maps_hdf5"],
                               filters={"quality": "valid"}, enqueue=False, quota=False)  # fmt: skip
        Generation.objects.filter(pk=generation.pk).update(export=export)
        export = run_export(export_id=export.pk)
        if not export.counts.get("maps"):
            raise StepFailed(f"export {export.pk} has no maps to learn from")
        export_dir = export_path(export, "maps.h5").parent
        images = directory / "images"
        write_images(experiment, images)
        parent = generation.parent
        version = f"{experiment.slug}-g{generation.number}"
        out = directory / "candidate.pt"
        train = [sys.executable, "-m", "model_server.train", "--init", parent.checkpoint, "--maps", str(export_dir),
                 "--images", str(images), "--cotrain", "--out", str(out), "--version", version,
                 *experiment.evolve_train_args]  # fmt: skip
        _run_step("training", train, directory / "train.log")
        candidate_eval = _evaluate(out, export_dir, images, directory / "evaluate-candidate.log")
        # The live version on the same held-out images, from a copy: evaluate writes into its checkpoint.
        live_copy = directory / "live.pt"
        shutil.copyfile(parent.checkpoint, live_copy)
        live_eval = _evaluate(live_copy, export_dir, images, directory / "evaluate-live.log")
        info = partners.describe_checkpoint(str(out))
        candidate = partners.register_version(
            partner=experiment.partner, version=version, checkpoint=str(out), classes=info["classes"],
            architecture=info["architecture"], parent=parent, export_id=export.pk,
            dataset_version=export.dataset_version, evaluation=candidate_eval,
        )  # fmt: skip
        Generation.objects.filter(pk=generation.pk).update(candidate=candidate)
        decision = partners.decide(experiment=experiment, candidate=candidate,
                                   live_numbers=partners.evaluation_numbers(live_eval))  # fmt: skip
        status = Generation.Status.PROMOTED if decision.passed else Generation.Status.REFUSED
        _finish(generation, status, decision.reason)
    except BaseException as error:  # every way out records why; an interruption then propagates
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if isinstance(error, KeyboardInterrupt | SystemExit):
            reason = f"interrupted ({reason})"
        if candidate is not None:
            PartnerModelVersion.objects.filter(pk=candidate.pk, status=PartnerModelVersion.Status.CANDIDATE).update(
                status=PartnerModelVersion.Status.FAILED, status_reason=f"its generation failed: {reason}"
            )
        _finish(generation, Generation.Status.FAILED, reason)
        logger.exception("generation %s of %s failed", generation.number, experiment.slug)
        if not isinstance(error, Exception):
            raise
    generation.refresh_from_db()
    return generation


def evolve(experiment: Experiment, *, if_due: bool = False) -> Generation:
    """Start and run the next generation in this process (the `evolve_partner` command)."""
    generation = start_generation(experiment, if_due=if_due)

    def interrupted(signum: int, frame: object) -> None:
        raise SystemExit(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupted) if _main_thread() else None
    try:
        return run_generation(generation)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# --- started by beat --------------------------------------------------------------------------


def start_due_processes() -> list[str]:
    """Start an `evolve_partner --if-due` process for each live experiment that is due; return their slugs.

    Only starts them (detached, logging under EVOLUTION_ROOT): the beat task that calls this must
    never train in a worker. The process itself takes the lock and re-checks.
    """
    started = []
    candidates = Experiment.objects.filter(evolve_every_maps__gt=0, status=Experiment.Status.LIVE)
    for experiment in candidates.order_by("slug"):
        if Generation.objects.filter(experiment=experiment, status=Generation.Status.RUNNING).exists():
            continue
        if not is_due(experiment):
            continue
        log = Path(settings.EVOLUTION_ROOT) / experiment.slug / "evolve.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "evolve_partner",
                   "--experiment", experiment.slug, "--if-due"]  # fmt: skip
        with log.open("a", encoding="utf-8") as out:
            subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=settings.BASE_DIR)  # fmt: skip
        started.append(experiment.slug)
        logger.info("started a generation of %s (log: %s)", experiment.slug, log)
    return started
