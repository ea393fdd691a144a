"""Shapes of the game API's payloads (validation of shape and range only; rules live in services)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from games.api_input import (
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictUUIDField,
    is_integer,
    json_type,
)
from games.models import IMAGE_SIZE, PlaySession, Round

MAX_CLICKS_PER_UPLOAD = 200
MAX_SCREEN = 20_000


class SessionStartSerializer(serializers.Serializer):
    screen_width = StrictIntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    screen_height = StrictIntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    canvas_width = StrictIntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    canvas_height = StrictIntegerField(min_value=1, max_value=MAX_SCREEN, required=False)
    device_pixel_ratio = StrictFloatField(min_value=0.1, max_value=10, required=False)
    pointer_type = StrictChoiceField(choices=PlaySession.PointerType.choices, required=False)


class RoundStartSerializer(serializers.Serializer):
    session_id = StrictIntegerField(min_value=1)
    client_round_id = StrictUUIDField()


class ClickField(serializers.ListField):
    """One bubble as [x, y, t_ms], JSON integers (not "5", not 5.0), x and y inside the image."""

    child = StrictIntegerField(min_value=0, max_value=10_000_000)

    def to_internal_value(self, data: object) -> tuple[int, int, int]:
        if not isinstance(data, list) or len(data) != 3:
            raise serializers.ValidationError("each bubble must be [x, y, t_ms]")
        for name, value in zip(("x", "y", "t_ms"), data, strict=True):
            if not is_integer(value):  # named here: the child field would only say "0", "1" or "2"
                raise serializers.ValidationError(f"{name} must be an integer, not {json_type(value)}")
        x, y, t_ms = super().to_internal_value(data)
        if x >= IMAGE_SIZE or y >= IMAGE_SIZE:
            raise serializers.ValidationError(f"({x}, {y}) is outside the {IMAGE_SIZE}×{IMAGE_SIZE} image")
        return x, y, t_ms


def start_seq_field(**options: object) -> StrictIntegerField:
    """The sequence number of a batch's first bubble (an upload's, or a guess's that carries one)."""
    return StrictIntegerField(min_value=0, max_value=10_000, **options)


def clicks_field(**options: object) -> serializers.ListField:
    """A batch of bubbles, [x, y, t_ms] each, in painting order."""
    return serializers.ListField(child=ClickField(), min_length=1, max_length=MAX_CLICKS_PER_UPLOAD, **options)


class ClicksUploadSerializer(serializers.Serializer):
    start_seq = start_seq_field()
    clicks = clicks_field()


class GuessRequestSerializer(serializers.Serializer):
    """A guess, optionally carrying the bubbles painted since the last upload (stored first, as a
    clicks upload would store them): one request per query point instead of two."""

    bubble_count = StrictIntegerField(min_value=1, max_value=10_000)
    start_seq = start_seq_field(required=False)
    clicks = clicks_field(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("start_seq" in attrs) != ("clicks" in attrs):
            raise serializers.ValidationError("start_seq and clicks come together (a batch of bubbles) or not at all")
        return attrs


class SubmitSerializer(serializers.Serializer):
    outcome = StrictChoiceField(choices=Round.Outcome.choices)
    bubble_count = StrictIntegerField(min_value=0, max_value=10_000)


def round_state(round_: Round, counts: dict[str, int] | None = None) -> dict:
    """The RoundState of docs/game-api.md: what the browser needs to play or resume a round.

    `label` is the class to reveal, shown before and during the round as in the original game;
    once scored, `partner_guess` is the partner's best guess at the last point it looked.
    `session` says how far the session is towards completion and whether it is complete.
    `counts`: `RoundQuerySet.done_in_session`, where the caller has just counted them (else counted here).
    """
    session = round_.session
    if counts is None:
        counts = Round.objects.done_in_session(round_)
    done_before = counts["before"]
    state = {
        "client_round_id": str(round_.client_round_id),
        "round_number": done_before + 1,
        "rounds_total": round_.experiment.rounds_per_session,
        "image_url": reverse("games:round-image", args=[round_.client_round_id]),
        "label": round_.image.category.name,
        "settings": round_.settings,
        "status": round_.status,
        "next_seq": round_.bubble_count,
        "outcome": round_.outcome if round_.status == Round.Status.SCORED else "",
        "points": round_.points,
        "partner_guess": None,
        "session": {
            "rounds_done": counts["done"],
            "rounds_total": round_.experiment.rounds_per_session,
            "complete": session.completed_at is not None,
        },
    }
    if round_.status == Round.Status.SCORED:
        guesses = round_.guesses.filter(partner_version_id=round_.partner_version_id)
        if round_.recognised_at_query is not None:  # what it said when it got it, else its last word
            guesses = guesses.filter(query_index=round_.recognised_at_query)
        last = guesses.order_by("-query_index").first()
        if last is not None and last.classes:
            state["partner_guess"] = {"label": last.classes[0], "probability": round(last.probabilities[0], 4)}
    return state
