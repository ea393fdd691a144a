from __future__ import annotations

from django.apps import AppConfig


class MapsConfig(AppConfig):
    """Click maps, reliability, exports, the researcher API and dashboard."""

    name = "maps"
