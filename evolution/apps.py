from __future__ import annotations

from django.apps import AppConfig


class EvolutionConfig(AppConfig):
    """Generations of the partner: export, co-train, evaluate, gate, promote (docs/evolution.md).

    Depends on maps (exports, maps) and games (partner versions, the gate); neither imports it.
    """

    name = "evolution"

    def ready(self) -> None:
        # The task module registers its task with Celery in every process; games asks back how
        # many maps remain before the next generation (docs/architecture.md, "Imports").
        from evolution import tasks  # noqa: F401
        from evolution.services import maps_until_next
        from games.partner import set_evolution_provider

        set_evolution_provider(maps_until_next)
