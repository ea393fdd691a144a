from __future__ import annotations

from django.apps import AppConfig


class MapsConfig(AppConfig):
    """Click maps, reliability, exports, the researcher API and dashboard."""

    name = "maps"

    def ready(self) -> None:
        # Celery's autodiscovery imports only maps.tasks; the export task lives in its own module.
        from maps import export_tasks  # noqa: F401
