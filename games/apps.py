from __future__ import annotations

from django.apps import AppConfig


class GamesConfig(AppConfig):
    """Images, participants, sessions, rounds, clicks, the game pages and API, moderation."""

    name = "games"

    def ready(self) -> None:
        # checks registers the system checks; tasks registers its tasks with Celery in every process
        # (autodiscovery runs in workers alone): services enqueue them by name (docs/architecture.md, "Imports").
        from games import checks, tasks  # noqa: F401
