"""`manage.py score_rounds`: score rounds left unscored, once or every N seconds."""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.services.scoring import enqueue_unscored_rounds


class Command(BaseCommand):
    help = (
        "Re-enqueue rounds submitted but never scored (the model server or the broker was down). "
        "With a broker, Celery beat does this every minute; without one (the embedded default), "
        "`make run` keeps this command running with --every 60."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=int, default=0, help="Repeat every N seconds (default: run once).")
        parser.add_argument("--older-than", type=int, default=30, help="Only rounds submitted N+ seconds ago.")

    def handle(self, *args: object, every: int, older_than: int, **options: object) -> None:
        if every < 0 or older_than < 0:
            raise CommandError("--every and --older-than must not be negative")
        while True:
            count = enqueue_unscored_rounds(older_than=timedelta(seconds=older_than))
            self.stdout.write(f"re-enqueued {count} unscored rounds")
            if not every:
                return
            time.sleep(every)
