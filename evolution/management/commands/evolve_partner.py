"""Run the next generation of an experiment's partner: export, co-train, evaluate, gate, promote."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evolution.models import Generation
from evolution.services import EvolutionRefused, evolve
from games.models import Experiment


class Command(BaseCommand):
    help = "Co-train the next generation of an experiment's partner from its maps and promote it through the gate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", required=True, help="Experiment slug.")
        parser.add_argument(
            "--if-due", action="store_true", help="Only once evolve_every_maps new maps are there (what beat runs)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(slug=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"no experiment {options['experiment']!r}")
        try:
            generation = evolve(experiment, if_due=options["if_due"])
        except EvolutionRefused as error:
            if options["if_due"]:  # beat's start: nothing to do is no failure
                self.stdout.write(f"no generation started: {error}")
                return
            raise CommandError(str(error)) from error
        candidate = generation.candidate
        self.stdout.write(f"{generation}: {generation.reason}")
        if candidate is not None:
            self.stdout.write(
                f"candidate {candidate} ({candidate.status}): accuracy {candidate.accuracy}, "
                f"with the reveal {candidate.accuracy_revealed}, alignment {candidate.alignment}"
            )
        if generation.status == Generation.Status.FAILED:
            raise CommandError(f"generation {generation.number} failed: {generation.reason}")
