"""`manage.py rebuild_maps`: recompute click maps from the raw clicks, bit for bit."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment
from maps.services import rebuild_maps


class Command(BaseCommand):
    help = (
        "Rebuild every click map of one experiment (or of all) from the stored clicks, with each map's recorded "
        "parameters. The same clicks always give the same .npy bytes; unchanged maps rewrite no file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", help="Experiment slug (default: every experiment).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: object, experiment: str | None, no_progress: bool, **options: object) -> None:
        experiment_id = None
        if experiment is not None:
            experiment_id = Experiment.objects.filter(slug=experiment).values_list("pk", flat=True).first()
            if experiment_id is None:
                raise CommandError(f"no experiment with slug {experiment!r}")
        count = rebuild_maps(experiment_id=experiment_id, progress=not no_progress)
        self.stdout.write(f"rebuilt {count} maps")
