"""`manage.py bench_maps` (`make bench`): maps per second, vectorised against the lab's per-click blurring."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench import maps as bench_maps


class Command(BaseCommand):
    help = (
        "On simulated clicks around the demo set's objects, build every image's map the vectorised way "
        "(integer histograms, blurred once per image) and a few the lab's way (each click blurred on its own), "
        "and print maps per second for both and their ratio."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--images", type=int, default=200, help="Images (default 200).")
        parser.add_argument("--participants", type=int, default=10, help="Participants per image (default 10).")
        parser.add_argument("--clicks", type=int, default=60, help="Mean bubbles per participant (default 60).")
        parser.add_argument(
            "--reference-images", type=int, default=3, help="Images built the slow per-click way (default 3)."
        )

    def handle(self, *args: object, **options: int) -> None:
        if min(options["images"], options["participants"], options["clicks"], options["reference_images"]) < 1:
            raise CommandError("--images, --participants, --clicks and --reference-images must be positive")
        if options["reference_images"] > options["images"]:
            raise CommandError("--reference-images cannot exceed --images")
        bench_maps.run(
            images=options["images"], participants=options["participants"], clicks=options["clicks"],
            reference_images=options["reference_images"], out=self.stdout.write,
        )  # fmt: skip
