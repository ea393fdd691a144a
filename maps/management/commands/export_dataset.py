"""Export an experiment's dataset from the command line, with a progress bar, and print its manifest summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from games.models import Experiment
from maps.export_jobs import (
    FORMATS,
    ExportRequestInvalid,
    create_export,
    export_path,
    last_successful_export,
    run_export,
)
from maps.exports import MANIFEST
from maps.models import Export


class Command(BaseCommand):
    help = "Export an experiment's clicks, maps, overlays, COCO points and manifest into a new directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", required=True, help="Experiment slug.")
        parser.add_argument("--formats", nargs="+", choices=FORMATS, default=[f for f in FORMATS if f != "manifest"],
                            help="Formats to write (default: all); the manifest is always written.")  # fmt: skip
        parser.add_argument("--since-last", action="store_true", help="Only rounds after the last successful export.")
        parser.add_argument("--from", dest="start", metavar="DATE", help="First submission day (YYYY-MM-DD), UTC.")
        parser.add_argument("--to", dest="end", metavar="DATE", help="Last submission day (YYYY-MM-DD), inclusive.")
        parser.add_argument("--quality", choices=["valid", "all", "invalidated"], default="valid")
        parser.add_argument("--out", type=Path, help="Write under this directory instead of EXPORT_ROOT.")
        parser.add_argument("--user", help="Researcher recorded as the creator (default: the experiment's owner).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(slug=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"no experiment {options['experiment']!r}")
        user = experiment.owner
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        since = None
        if options["since_last"]:
            since = last_successful_export(experiment=experiment)
            if since is None:
                self.stderr.write("no earlier successful export: exporting everything")
        filters = {"quality": options["quality"], "from": options["start"], "to": options["end"]}
        filters = {name: value for name, value in filters.items() if value}
        try:
            export = create_export(experiment=experiment, user=user, formats=options["formats"], filters=filters,
                                   since=since, enqueue=False, quota=False)  # fmt: skip
        except ExportRequestInvalid as exc:
            raise CommandError(str(exc)) from exc
        export = self._run(export, options)
        self._summarise(export)

    def _run(self, export: Export, options: dict[str, Any]) -> Export:
        with tqdm(total=0, unit="item", desc=f"export {export.pk}", disable=options["no_progress"]) as bar:

            def show(done: int, total: int, counts: dict[str, int]) -> None:
                bar.total = total
                bar.set_postfix(clicks=counts["clicks"], maps=counts["maps"], refresh=False)
                bar.update(done - bar.n)

            try:
                return run_export(export_id=export.pk, root=options["out"], on_progress=show)
            except Exception as exc:  # run_export recorded it on the job and removed the partial files
                raise CommandError(f"export {export.pk} failed: {exc}") from exc

    def _summarise(self, export: Export) -> None:
        path = export_path(export, MANIFEST)
        manifest = json.loads(path.read_text())
        self.stdout.write(f"export {export.pk}: {manifest['dataset_version']} in {path.parent}")
        self.stdout.write(f"filters: {json.dumps(manifest['filters'])}; since: {json.dumps(manifest['since'])}")
        self.stdout.write("counts: " + ", ".join(f"{key} {value}" for key, value in manifest["counts"].items()))
        reliability = manifest["reliability"]
        if reliability:
            self.stdout.write(
                f"reliability: ceiling {reliability['ceiling_spearman']:.3f}, floor {reliability['floor_spearman']:.3f}"
            )
        for entry in export.files:
            self.stdout.write(f"  {entry['name']:<20} {entry['bytes']:>14,} B  sha256 {entry['sha256'][:16]}…")
