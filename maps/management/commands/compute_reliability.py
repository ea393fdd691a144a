"""`manage.py compute_reliability`: split-half ceiling and floor of an experiment's maps (SPEC §4)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment, Image
from maps.reliability import MIN_PARTICIPANTS
from maps.services import compute_reliability


class Command(BaseCommand):
    help = (
        f"For each image with at least {MIN_PARTICIPANTS} participants, split them at random into halves N times "
        "and compare the halves' maps (Spearman, and the mean IoU over thresholds 0.05…0.95); the floor pairs a "
        "half with another image's. Stores the report and prints per-image and overall ceiling and floor."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", required=True, help="Experiment slug.")
        parser.add_argument("--iterations", type=int, default=100, help="Random splits per image (default 100).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the splits (default 0).")

    def handle(self, *args: object, experiment: str, iterations: int, seed: int, **options: object) -> None:
        if iterations < 1:
            raise CommandError("--iterations must be at least 1")
        found = Experiment.objects.filter(slug=experiment).first()
        if found is None:
            raise CommandError(f"no experiment with slug {experiment!r}")
        try:
            report = compute_reliability(experiment_id=found.pk, iterations=iterations, seed=seed)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        names = dict(
            Image.objects.filter(pk__in=[row[0] for row in report.parameters["per_image"]]).values_list("pk", "name")
        )
        self.stdout.write(f"{'image':<32}{'n':>5}{'ceiling ρ':>11}{'floor ρ':>10}{'ceiling AUC':>13}{'floor AUC':>11}")
        for image_id, n, ceiling, floor, ceiling_auc, floor_auc in report.parameters["per_image"]:
            name = str(names.get(image_id, image_id))
            self.stdout.write(f"{name:<32}{n:>5}{ceiling:>11.3f}{floor:>10.3f}{ceiling_auc:>13.3f}{floor_auc:>11.3f}")
        self.stdout.write(
            f"{'overall (' + str(report.image_count) + ' images)':<37}{report.ceiling_spearman:>11.3f}"
            f"{report.floor_spearman:>10.3f}{report.ceiling_auc:>13.3f}{report.floor_auc:>11.3f}"
        )
