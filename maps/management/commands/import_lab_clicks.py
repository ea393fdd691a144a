"""`manage.py import_lab_clicks CSV --experiment SLUG`: bring the lab's historical ClickMe data into the maps."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment, ImageSet
from maps.lab_import import LabImportError, import_lab_csv


class Command(BaseCommand):
    help = (
        "Import trials from a lab CSV (image_path, clicks, user_id; clicks as [(x, y), ...], {(x,y),...} or "
        '{"x":[...],"y":[...]}) as scored rounds of "lab-<user_id>" participants, then rebuild the affected maps. '
        "Images are found in the experiment's image set by file name or stem. Any bad row aborts the import "
        "with a list of problems; importing the same file again adds nothing. With --native, coordinates are pixels "
        "of each image's original and are mapped onto its 256x256 crop; bubbles the crop cuts away are reported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv", type=Path, help="The lab's CSV file.")
        parser.add_argument("--experiment", required=True, help="Experiment slug the trials belong to.")
        parser.add_argument("--image-set", help="Image set to find images in (default: the experiment's).")
        parser.add_argument(
            "--drop-outside",
            action="store_true",
            help="Drop (and report) bubbles outside the image instead of failing.",
        )
        parser.add_argument(
            "--native",
            action="store_true",
            help="Coordinates are pixels of the original image: map them onto the stored crop.",
        )

    def handle(self, *args: object, **options: object) -> None:
        experiment = Experiment.objects.filter(slug=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"no experiment with slug {options['experiment']!r}")
        image_set = None
        if options["image_set"]:
            image_set = ImageSet.objects.filter(name=options["image_set"]).first()
            if image_set is None:
                raise CommandError(f"no image set named {options['image_set']!r}")
        path: Path = options["csv"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            with path.open(newline="", encoding="utf-8-sig") as stream:
                summary = import_lab_csv(
                    stream=stream, experiment=experiment, image_set=image_set, drop_outside=options["drop_outside"],
                    native=options["native"],
                )  # fmt: skip
        except LabImportError as exc:
            raise CommandError(str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc}") from exc
        self.stdout.write(
            f"{summary.rows} rows: {summary.rounds_created} rounds imported ({summary.rounds_existing} already there), "
            f"{summary.participants_created} new participants, {summary.clicks_created} bubbles, "
            f"{summary.maps_rebuilt} maps rebuilt"
        )
        if summary.clicks_outside:
            self.stdout.write(f"{summary.clicks_outside} bubbles outside the image or its crop were dropped:")
            for line in summary.outside:
                self.stdout.write(f"  {line}")
