"""Shapes of the game API's payloads (validation of shape and range only; rules live in services)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from games.models import IMAGE_SIZE, PlaySession, Round

MAX_CLICKS_PER_UPLOAD = 200
MAX_SCREEN = 20_000


class SessionStartSerializer(serializers.Serializer):
    screen_width = serializers.IntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    screen_height = serializers.IntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    canvas_width = serializers.IntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    canvas_height = serializers.IntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    device_pixel_ratio = serializers.FloatField(min_value=0.1, max_value=10, required=False)
    pointer_type = serializers.ChoiceField(choices=PlaySession.PointerType.choices, required=False)


class RoundStartSerializer(serializers.Serializer):
    session_id = serializers.IntegerField(min_value=1)
    client_round_id = serializers.UUIDField()


class ClickField(serializers.ListField):
    """One bubble as [x, y, t_ms], integers, x and y inside the image."""

    child = serializers.IntegerField(min_value=0, max_value=10_000_000)

    def to_internal_value(self, data: object) -> tuple[int, int, int]:
        if not isinstance(data, list) or len(data) != 3:
            raise serializers.ValidationError("each bubble must be [x, y, t_ms]")
        x, y, t_ms = super().to_internal_value(data)
        if x >= IMAGE_SIZE or y >= IMAGE_SIZE:
            raise serializers.ValidationError(f"({x}, {y}) is outside the {IMAGE_SIZE}×{IMAGE_SIZE} image")
        return x, y, t_ms


class ClicksUploadSerializer(serializers.Serializer):
    start_seq = serializers.IntegerField(min_value=0, max_value=10_000)
    clicks = serializers.ListField(child=ClickField(), min_length=1, max_length=MAX_CLICKS_PER_UPLOAD)


class GuessRequestSerializer(serializers.Serializer):
    bubble_count = serializers.IntegerField(min_value=1, max_value=10_000)


class SubmitSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Round.Outcome.choices)
    bubble_count = serializers.IntegerField(min_value=0, max_value=10_000)


def round_state(round_: Round) -> dict:
    """The RoundState of docs/game-api.md: what the browser needs to play or resume a round."""
    return {
        "client_round_id": str(round_.client_round_id),
        "round_number": round_.session.rounds.filter(pk__lte=round_.pk).count(),
        "rounds_total": round_.experiment.rounds_per_session,
        "image_url": reverse("games:round-image", args=[round_.client_round_id]),
        "settings": round_.settings,
        "status": round_.status,
        "next_seq": round_.bubble_count,
        "outcome": round_.outcome if round_.status == Round.Status.SCORED else "",
        "points": round_.points,
    }
