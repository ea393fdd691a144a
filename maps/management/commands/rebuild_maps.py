"""`manage.py rebuild_maps`: recompute click maps from the raw clicks, bit for bit (docs/maps-and-reliability.md)."""

from __future__ import annotations

import dataclasses

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment
from maps.heatmap import SELECTIONS
from maps.services import experiment_parameters, rebuild_maps


class Command(BaseCommand):
    help = (
        "Rebuild every click map of one experiment (or of all) from the stored clicks, with each map's recorded "
        "parameters. The same clicks always give the same .npy bytes; unchanged maps rewrite no file. "
        "--selection-recipe, --min-participants and --min-clicks change the experiment's parameters for all its maps."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", help="Experiment slug (default: every experiment).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--selection-recipe",
            choices=sorted(SELECTIONS),
            help="Which rounds feed a map: 'lab' (default for new experiments) or 'first-counting'.",
        )
        parser.add_argument("--min-participants", type=int, help="Participants a map needs to be published.")
        parser.add_argument("--min-clicks", type=int, help="Bubbles a round needs to count.")

    def handle(self, *args: object, experiment: str | None, no_progress: bool, **options: object) -> None:
        experiment_id = None
        if experiment is not None:
            experiment_id = Experiment.objects.filter(slug=experiment).values_list("pk", flat=True).first()
            if experiment_id is None:
                raise CommandError(f"no experiment with slug {experiment!r}")
        changes = {
            name: options[name]
            for name in ("selection_recipe", "min_participants", "min_clicks")
            if options.get(name) is not None
        }
        params = None
        if changes:
            if experiment_id is None:
                raise CommandError("--selection-recipe, --min-participants and --min-clicks need --experiment")
            try:
                params = dataclasses.replace(experiment_parameters(experiment_id), **changes)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        count = rebuild_maps(experiment_id=experiment_id, progress=not no_progress, params=params)
        self.stdout.write(f"rebuilt {count} maps")
        if params is not None:
            self.stdout.write(
                f"maps now use the {params.selection_recipe!r} selection recipe: {SELECTIONS[params.selection_recipe]}"
            )
