"""`manage.py compute_reliability`: split-half ceiling and floor of an experiment's maps.

The recipes and what each number computes: docs/maps-and-reliability.md.
"""

from __future__ import annotations

import dataclasses

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment, Image
from maps.reliability import OVERLAP_LABELS, RELIABILITY_RECIPES
from maps.services import compute_reliability


class Command(BaseCommand):
    help = (
        "For each image with enough participants, split them at random into halves N times and compare the halves' "
        "maps (Spearman, and an overlap over thresholds 0.05…0.95); the floor pairs a half with another image's. "
        "The default recipe 'lab' follows serre-lab's ceiling script (bootstrapped halves, 224 centre crop, the "
        "area under the IoU curve, one floor partner per image, the maps' minimum participants); 'clickme-v1' is "
        "what this project computed before. Stores the report and prints per-image and overall values and warnings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", required=True, help="Experiment slug.")
        parser.add_argument("--iterations", type=int, default=100, help="Random splits per image (default 100).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the splits (default 0).")
        parser.add_argument("--recipe", choices=sorted(RELIABILITY_RECIPES), default="lab", help="Default: lab.")
        parser.add_argument("--crop", type=int, help="Centre crop before scoring, px (0: none; lab default 224).")
        parser.add_argument("--min-participants", type=int, help="Participants an image needs (default: recipe's).")

    def handle(self, *args: object, experiment: str, iterations: int, seed: int, **options: object) -> None:
        if iterations < 1:
            raise CommandError("--iterations must be at least 1")
        found = Experiment.objects.filter(slug=experiment).first()
        if found is None:
            raise CommandError(f"no experiment with slug {experiment!r}")
        recipe = RELIABILITY_RECIPES[options["recipe"]]
        changes = {"crop": options["crop"], "min_participants": options["min_participants"]}
        try:
            chosen = dataclasses.replace(recipe, **{key: value for key, value in changes.items() if value is not None})
            report = compute_reliability(experiment_id=found.pk, iterations=iterations, seed=seed, options=chosen)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        names = dict(
            Image.objects.filter(pk__in=[row[0] for row in report.parameters["per_image"]]).values_list("pk", "name")
        )
        overlap = OVERLAP_LABELS[chosen.overlap]
        described = report.parameters["reliability"]
        self.stdout.write(
            f"recipe {described['recipe']} ({overlap}: {described['overlap_definition']}); "
            f"maps selected by {report.parameters['selection_recipe']}"
        )
        columns = ("ceiling ρ", "floor ρ", f"ceiling {overlap}", f"floor {overlap}")
        self.stdout.write(f"{'image':<32}{'n':>5}" + "".join(f"{name:>18}" for name in columns))
        for image_id, n, *values in report.parameters["per_image"]:
            name = str(names.get(image_id, image_id))
            cells = "".join(f"{'—' if value is None else format(value, '.3f'):>18}" for value in values)
            self.stdout.write(f"{name:<32}{n:>5}{cells}")
        overall = (report.ceiling_spearman, report.floor_spearman, report.ceiling_auc, report.floor_auc)
        label = f"overall ({report.image_count} images)"
        self.stdout.write(f"{label:<37}" + "".join(f"{value:>18.3f}" for value in overall))
        for warning in report.parameters["warnings"]:
            self.stdout.write(f"warning: {warning}")
