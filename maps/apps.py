from __future__ import annotations

from django.apps import AppConfig


class MapsConfig(AppConfig):
    """Click maps, reliability, exports, the researcher API and dashboard."""

    name = "maps"

    def ready(self) -> None:
        # AppConfig.ready() is where Django wants apps wired, once every model is loaded.
        # The task modules register their tasks with Celery in every process, not only in workers
        # (autodiscovery runs there alone): services enqueue them by name (docs/architecture.md, "Imports").
        from games.consensus import set_consensus_provider
        from maps import export_tasks, receivers, tasks  # noqa: F401  (receivers connect to games.signals)
        from maps.services import consensus_map

        set_consensus_provider(consensus_map)
