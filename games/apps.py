from __future__ import annotations

from django.apps import AppConfig


class GamesConfig(AppConfig):
    """Images, participants, sessions, rounds, clicks, the game pages and API, moderation."""

    name = "games"

    def ready(self) -> None:
        from games import checks  # noqa: F401  (registers the system checks)
