"""`manage.py simulate_players`: simulated participants playing through the browser's own HTTP endpoints.

The players, their run and its report are devtools.players (docs/load-testing.md); the cheaters'
per-rule table is devtools.detection. This command reads the options and prints.
"""

from __future__ import annotations

import logging
import random

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools.cheats import CHEATS
from devtools.detection import detection_counts, detection_table
from devtools.players import check_database, simulate, summary_lines


class Command(BaseCommand):
    help = "Simulated participants play the game over HTTP, then the run is checked against the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--players", type=int, default=10, help="Participants (default 10).")
        parser.add_argument("--rounds", type=int, default=5, help="Rounds each participant plays (default 5).")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The site (default http://127.0.0.1:8000).")
        parser.add_argument("--concurrency", type=int, default=8, help="Players at once (default 8).")
        parser.add_argument("--experiment", default="demo", help="Experiment slug (default demo).")
        parser.add_argument("--seed", type=int, help="Seed of the players' painting (default: random).")
        parser.add_argument("--skip-rate", type=float, default=0.03, help="Share of rounds skipped (default 0.03).")
        parser.add_argument("--think-ms", type=float, default=10.0, help="Up to this pause between requests.")
        parser.add_argument("--score-timeout", type=float, default=60.0, help="Seconds to wait for scoring.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        parser.add_argument(
            "--cheat", action="append", default=[], metavar="KIND",
            help=f"Add cheaters of this kind (repeatable, comma-separated, or 'all'): {', '.join(CHEATS)}.",
        )  # fmt: skip
        parser.add_argument("--cheaters", type=int, default=1, help="Cheaters of each --cheat kind (default 1).")

    def handle(self, *args: object, **options: object) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the summary
        players, rounds, concurrency = options["players"], options["rounds"], options["concurrency"]
        if players < 1 or rounds < 1 or concurrency < 1:
            raise CommandError("--players, --rounds and --concurrency must be at least 1")
        seed = options["seed"] if options["seed"] is not None else random.SystemRandom().randrange(2**32)
        kinds = [kind.strip() for value in options["cheat"] for kind in value.split(",") if kind.strip()]
        kinds = [name for kind in kinds for name in (CHEATS if kind == "all" else [kind])]
        unknown = sorted(set(kinds) - set(CHEATS))
        if unknown or (kinds and options["cheaters"] < 1):
            raise CommandError(f"--cheat takes {', '.join(CHEATS)} and --cheaters at least 1 (got {unknown})")
        cheats = dict.fromkeys(kinds, options["cheaters"])
        if cheats:
            self.stdout.write(f"with {options['cheaters']} cheaters of each kind: {', '.join(cheats)}")
        self.stdout.write(f"{players} players × {rounds} rounds against {options['url']} "
                          f"(experiment {options['experiment']}, concurrency {concurrency}, seed {seed})")  # fmt: skip
        tally, wall_s = simulate(
            url=options["url"], slug=options["experiment"], players=players, rounds=rounds,
            concurrency=concurrency, seed=seed, progress=not options["no_progress"],
            score_timeout=options["score_timeout"], skip_rate=options["skip_rate"], think_ms=options["think_ms"],
            cheats=cheats,
        )  # fmt: skip
        check = check_database(tally.rounds)
        self.stdout.write("\n".join(summary_lines(tally, check, wall_s)))
        if cheats:
            groups: dict[str, list[tuple[list[int], bool]]] = {kind: [] for kind in ("honest", *cheats)}
            for kind, sessions, refused in tally.players:
                groups[kind].append((sessions, refused))
            self.stdout.write("\nquality flags: players refused at upload, flagged by each rule, caught by either")
            self.stdout.write("\n".join(detection_table(detection_counts(groups))))
        errors = sum(tally.errors.values()) + len(check.problems)
        if errors:
            raise CommandError(f"{errors} errors (see above)")
        submitted = sum(1 for played in tally.rounds if played.status)
        self.stdout.write(self.style.SUCCESS(f"{submitted} rounds played and scored without an error"))
