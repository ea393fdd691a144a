"""`manage.py bench_game` (`make bench`): simulated players over HTTP against the database's bulk-insert limit."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench import game as bench_game


class Command(BaseCommand):
    help = (
        "Rounds per second and partner-guess latency with many simulated players, against inserting the same "
        "rows with bulk_create. Starts its own gunicorn and model server unless --url is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--players", type=int, default=64, help="Simulated players at once (default 64).")
        parser.add_argument("--seconds", type=float, default=20.0, help="How long they play (default 20).")
        parser.add_argument("--url", help="A running site to play against (default: start gunicorn + model server).")
        parser.add_argument("--experiment", default="demo", help="Experiment slug (default demo).")
        parser.add_argument("--checkpoint", type=Path, help="Partner checkpoint (default the demo's).")
        parser.add_argument("--web-workers", type=int, help="gunicorn workers (default 2 × cores + 1, at most 8).")
        parser.add_argument("--web-threads", type=int, default=8, help="Threads per gunicorn worker (default 8).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the players' painting (default 0).")
        parser.add_argument("--keep", action="store_true", help="Keep the rows the benchmark made.")

    def handle(self, *args: object, **options: object) -> None:
        if options["players"] < 1 or options["seconds"] <= 0:
            raise CommandError("--players must be at least 1 and --seconds positive")
        try:
            result = bench_game.run(
                players=options["players"], seconds=options["seconds"], url=options["url"],
                slug=options["experiment"], checkpoint=options["checkpoint"], web_workers=options["web_workers"],
                web_threads=options["web_threads"], seed=options["seed"], keep=options["keep"], out=self.stdout,
            )  # fmt: skip
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        if result["errors"]:
            raise CommandError(f"{result['errors']} errors during the benchmark")
