"""Generations of the partner, end to end: play over HTTP -> export -> co-train -> evaluate -> gate -> activate."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery._state import _set_task_join_will_block
from django.core.management import CommandError, call_command
from django.utils import timezone

from devtools.partner_process import serve_partner, wait_until_ready
from evolution import services
from evolution.models import Generation
from games.models import Experiment, PartnerModelVersion, PromotionDecision, Round
from games.partner import evolution_status
from maps.heatmap import MapParameters
from maps.models import Export
from maps.services import build_click_map, rebuild_maps
from maps.tests.factories import scored_round
from model_server.client import PartnerClient

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "evolution-test-admin-token-0123456789abcdef"
# A tiny network and one epoch: the test checks the loop, not what the partner learns.
TINY = ["--widths", "4", "8", "8", "8", "--stem-width", "8", "--epochs", "1", "--batch-size", "2", "--threads", "1",
        "--val-fraction", "0.5", "--eval-bubbles", "10", "--no-augment"]  # fmt: skip


@pytest.fixture(autouse=True)
def _reset_celery_join_flag() -> Iterator[None]:
    """Eager tasks in the live server's threads can leave Celery's "inside a task" flag set: clear it."""
    yield
    _set_task_join_will_block(False)


@pytest.fixture
def demo(transactional_db: None, settings, tmp_path: Path) -> Experiment:
    """The demo study (one image per class) set to evolve every 5 maps, with a gate that lets anything through."""
    call_command("seed_demo", "--per-class", "1", "--no-progress", stdout=io.StringIO())
    experiment = Experiment.objects.get(slug="demo")
    experiment.time_limit_ms, experiment.rounds_per_session = 2000, 4
    experiment.evolve_every_maps, experiment.evolve_train_args = 5, TINY
    # The tiny networks' numbers are noise: this test checks the loop; the gate's rule has its own tests.
    experiment.promotion_accuracy_margin = experiment.promotion_alignment_margin = 1.0
    experiment.save()
    settings.EVOLUTION_ROOT = tmp_path / "evolution"
    settings.MODEL_SERVER_TIMEOUT_MS = 10_000  # two cores shared with training: a live guess may be slow
    return experiment


def first_generation(path: Path) -> Path:
    """Generation 0: an untrained tiny GALA over the demo classes, split as the generations split."""
    import torch

    from model_server import demo_data
    from model_server.config import preset
    from model_server.network import build, save_checkpoint

    torch.manual_seed(0)
    config = preset("gala_small", widths=(4, 8, 8, 8), stem_width=8, num_classes=len(demo_data.CLASSES))
    save_checkpoint(path, build(config), config, classes=list(demo_data.CLASSES), version="gen0",
                    extra={"train": {"val_fraction": 0.5, "seed": 0}})  # fmt: skip
    return path


def play(live_server, players: int, rounds: int, seed: int) -> None:
    call_command(
        "simulate_players", "--url", live_server.url, "--no-progress", "--think-ms", "0", "--seed", str(seed),
        "--concurrency", "2", "--players", str(players), "--rounds", str(rounds), "--skip-rate", "0",
        stdout=io.StringIO(),
    )  # fmt: skip


def played_since(last_pk: int) -> list[int]:
    return list(Round.objects.filter(pk__gt=last_pk).values_list("pk", flat=True))


def active_version(url: str, name: str) -> str:
    with PartnerClient(url) as client:
        return client.metadata(name)["active_version"]


@pytest.mark.slow
def test_two_generations_co_train_from_played_maps_and_each_round_records_who_played_it(
    live_server, eager_tasks: None, demo: Experiment, settings, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MODEL_SERVER_ADMIN_TOKEN", TOKEN)  # the model server process reads it
    settings.MODEL_SERVER_ADMIN_TOKEN = TOKEN
    gen0 = first_generation(tmp_path / "gen0.pt")
    name = demo.partner.name
    with serve_partner(checkpoint=gen0, name=name, image_root=Path(settings.MEDIA_ROOT), log_path=tmp_path / "p.log",
                       workers=1, max_delay_ms=1, device="cpu") as partner:  # fmt: skip
        wait_until_ready(partner)
        settings.MODEL_SERVER_URL = partner.url
        call_command("register_partner", "--partner", name, "--checkpoint", str(gen0), "--promote", demo.slug,
                     "--user", demo.owner.username, "--reason", "generation 0", stdout=io.StringIO())  # fmt: skip
        assert evolution_status(demo) == {"generation": 0, "maps_until_next": 5}

        phases = []  # (live version, the rounds played against it)
        for generation, (players, rounds) in ((1, (3, 4)), (2, (2, 3))):
            first = Round.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            play(live_server, players=players, rounds=rounds, seed=generation)
            if generation == 1:  # one participant per map is enough here (the default needs 5)
                rebuild_maps(experiment_id=demo.pk, params=MapParameters(min_participants=1))
            phases.append((active_version(partner.url, name), played_since(first)))
            assert services.maps_until_next(demo) == 0
            call_command("evolve_partner", "--experiment", demo.slug, stdout=io.StringIO())
            assert active_version(partner.url, name) == f"demo-g{generation}"  # the model server serves it
        first = Round.objects.order_by("-pk").values_list("pk", flat=True).first()
        play(live_server, players=1, rounds=1, seed=3)
        phases.append((active_version(partner.url, name), played_since(first)))

    # Each round records the version that was live while it was played.
    assert [version for version, _ in phases] == ["gen0", "demo-g1", "demo-g2"]
    for version, rounds in phases:
        scored = Round.objects.filter(pk__in=rounds, status=Round.Status.SCORED)
        assert scored.exists()
        assert set(scored.values_list("partner_version__version", flat=True)) == {version}

    # The lineage of each version: parent, generation, the export it learnt from, its numbers.
    versions = {v.version: v for v in PartnerModelVersion.objects.filter(partner=demo.partner)}
    zero, one, two = versions["gen0"], versions["demo-g1"], versions["demo-g2"]
    assert (one.parent, two.parent, one.generation, two.generation) == (zero, one, 1, 2)
    assert [v.status for v in (zero, one, two)] == ["retired", "retired", "live"] and two.is_active
    generations = list(Generation.objects.filter(experiment=demo).order_by("number"))
    assert [(g.number, g.status, g.candidate, g.parent) for g in generations] == [
        (1, "promoted", one, zero), (2, "promoted", two, one),
    ]  # fmt: skip
    for version, generation in ((one, generations[0]), (two, generations[1])):
        export = Export.objects.get(pk=version.export_id)
        assert generation.export == export and export.status == Export.Status.SUCCEEDED
        assert version.dataset_version == export.dataset_version != ""
        assert version.classes == sorted(zero.classes)  # every category of the study
        assert None not in (version.accuracy, version.accuracy_revealed, version.alignment)
        assert Path(version.checkpoint).exists() and version.metrics["evaluation"]["images"] > 0
    assert generations[1].maps_at_start >= generations[0].maps_at_start >= 5
    gates = PromotionDecision.objects.filter(kind=PromotionDecision.Kind.GATE).order_by("pk")
    assert [(d.candidate, d.live, d.passed) for d in gates] == [(one, zero, True), (two, one, True)]
    assert all(d.numbers["live"]["alignment"] is not None for d in gates)  # the live one, on the same images
    assert evolution_status(demo)["generation"] == 2


def test_a_generation_that_fails_leaves_the_live_partner_and_says_why(demo: Experiment, tmp_path: Path) -> None:
    live = PartnerModelVersion.objects.create(partner=demo.partner, version="gen0", checkpoint=str(tmp_path / "x.pt"),
                                              classes=[], status="live", is_active=True)  # fmt: skip
    with pytest.raises(CommandError, match=r"generation 1 failed: StepFailed: export \d+ has no maps to learn from"):
        call_command("evolve_partner", "--experiment", demo.slug, stdout=io.StringIO())
    (generation,) = Generation.objects.all()
    assert generation.status == "failed" and generation.finished_at is not None and generation.candidate is None
    live.refresh_from_db()
    assert live.is_active and PartnerModelVersion.objects.count() == 1


def mapped(experiment: Experiment) -> None:
    """One image of the study with a map of five participants, played a minute ago (so the export takes it)."""
    image = experiment.image_set.images.order_by("pk").first()
    for offset in range(5):
        scored_round(
            experiment=experiment, image=image, clicks=[(100 + step + offset, 120) for step in range(0, 40, 4)]
        )
    earlier = timezone.now() - timedelta(minutes=2)
    Round.objects.update(started_at=earlier, submitted_at=earlier + timedelta(seconds=5),
                         scored_at=earlier + timedelta(seconds=6))  # fmt: skip
    build_click_map(experiment_id=experiment.pk, image_id=image.pk)


def test_a_training_step_that_fails_is_named_with_its_last_log_line_and_the_live_partner_stays(
    demo: Experiment, tmp_path: Path
) -> None:
    live = PartnerModelVersion.objects.create(partner=demo.partner, version="gen0", checkpoint=str(tmp_path / "x.pt"),
                                              classes=[], status="live", is_active=True)  # fmt: skip
    mapped(demo)
    demo.evolve_train_args = ["--arch", "no-such-arch"]
    demo.save()
    generation = services.run_generation(services.start_generation(demo))
    assert generation.status == "failed" and generation.export is not None
    assert generation.reason.startswith("StepFailed: training exited with")
    assert "no-such-arch" in generation.reason and "train.log" in generation.reason
    assert (Path(generation.directory) / "train.log").exists() and generation.candidate is None
    live.refresh_from_db()
    assert live.is_active and PartnerModelVersion.objects.count() == 2  # gen0 and the rounds' "test" version


def test_an_interrupted_generation_says_so_and_the_interruption_goes_on(demo: Experiment, tmp_path: Path,
                                                                      monkeypatch) -> None:  # fmt: skip
    PartnerModelVersion.objects.create(partner=demo.partner, version="gen0", checkpoint=str(tmp_path / "x.pt"),
                                       classes=[], status="live", is_active=True)  # fmt: skip
    mapped(demo)

    def interrupted(name: str, command: list[str], log: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(services, "_run_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        services.evolve(demo)
    (generation,) = Generation.objects.all()
    assert generation.status == "failed" and generation.reason == "interrupted (KeyboardInterrupt)"
    assert PartnerModelVersion.objects.get(version="gen0").is_active


def test_one_generation_at_a_time_and_an_interrupted_one_is_reaped(demo: Experiment, tmp_path: Path) -> None:
    with pytest.raises(services.EvolutionRefused, match="no live version"):
        services.start_generation(demo)
    PartnerModelVersion.objects.create(partner=demo.partner, version="gen0", checkpoint=str(tmp_path / "x.pt"),
                                       classes=[], status="live", is_active=True)  # fmt: skip
    with pytest.raises(services.EvolutionRefused, match="not due: 5 more new maps"):
        services.start_generation(demo, if_due=True)
    running = services.start_generation(demo)
    with pytest.raises(services.EvolutionRefused, match=r"generation 1 of demo \(running\) .* still running"):
        services.start_generation(demo)

    # Its process died without finishing (a pid that no process has): the next start says so, and goes on.
    gone = max(int(entry) for entry in os.listdir("/proc") if entry.isdigit()) + 10_000
    Generation.objects.filter(pk=running.pk).update(pid=gone, host=socket.gethostname())
    second = services.start_generation(demo)
    running.refresh_from_db()
    assert running.status == "failed" and f"interrupted: its process {gone} ended" in running.reason
    assert second.number == 2 and second.status == "running"


def test_train_args_may_not_take_over_the_flags_a_generation_sets(demo: Experiment) -> None:
    assert services.check_train_args(["--epochs", "2"]) == ["--epochs", "2"]
    with pytest.raises(services.EvolutionRefused, match="may not set --init, --out"):
        services.check_train_args(["--out=/tmp/x.pt", "--init", "other.pt"])
    with pytest.raises(services.EvolutionRefused, match="list of strings"):
        services.check_train_args("--epochs 2")


def test_beat_only_starts_a_process_for_a_due_experiment(demo: Experiment, monkeypatch, tmp_path: Path) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(services.subprocess, "Popen", lambda command, **options: started.append(command))
    assert services.start_due_processes() == []  # not due: no new maps yet
    demo.evolve_every_maps = 0
    demo.save()
    monkeypatch.setattr(services, "new_maps", lambda experiment: 100)
    assert services.start_due_processes() == []  # never evolves
    demo.evolve_every_maps = 5
    demo.save()
    assert services.start_due_processes() == ["demo"]
    (command,) = started
    assert command[-4:] == ["evolve_partner", "--experiment", "demo", "--if-due"]
