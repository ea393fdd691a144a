"""The game's JSON API (docs/game-api.md): one small view per action, logic in services."""

from __future__ import annotations

import uuid
from functools import cached_property

from django.http import Http404
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from games.access import StudyNotOpen, is_piloting, playable_experiment
from games.identity import ParticipantAuthentication, require_participant
from games.models import Experiment, Participant, PlaySession, Round
from games.painting import PaintingRuleBroken
from games.ratelimit import GameRateThrottle, retry_after_seconds
from games.serializers import (
    ClicksUploadSerializer,
    GuessRequestSerializer,
    RoundStartSerializer,
    SessionStartSerializer,
    SubmitSerializer,
    round_state,
)
from games.services.participants import address_hash, has_consented
from games.services.rounds import (
    Conflict,
    live_guess,
    open_session,
    rounds_done,
    start_round,
    store_clicks,
    submit_round,
)
from games.services.summary import summary
from model_server.client import PartnerError

MAX_BODY_BYTES = 64 * 1024


def _message(detail: object) -> str:
    """Flatten DRF's nested validation details into one sentence naming the fields."""
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_message(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_message(item) for item in detail if item)
    return str(detail)


def partner_unavailable(exc: PartnerError, **details: object) -> Response:
    """503 at once: the page paints on without this guess and asks again at the next query point."""
    body = {"error": f"the partner is unavailable: {exc}", **details}
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})


class GameApi(APIView):
    """Base of game endpoints: participant-cookie auth, a body limit, rate limits, errors as {"error": ...}."""

    authentication_classes = [ParticipantAuthentication]
    permission_classes: list = []
    throttle_classes = [GameRateThrottle]
    schema = None  # the browser's API, not a public one: the OpenAPI schema covers the researcher API
    rate_scope = "other"  # which of settings.GAME_RATE_LIMITS applies

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
            raise exceptions.ValidationError({"body": f"larger than {MAX_BODY_BYTES} bytes"}, code="too_large")
        super().initial(request, *args, **kwargs)
        self.participant_id: int = require_participant(request)

    @cached_property
    def participant(self) -> Participant:
        """The participant's row, read only by the calls that need more than its id."""
        participant = Participant.objects.filter(pk=self.participant_id).first()
        if participant is None:  # erased since the cookie was set
            raise exceptions.NotAuthenticated("start from the study's page and give consent first")
        return participant

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Conflict):
            return Response({"error": str(exc), **exc.details}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, PaintingRuleBroken):
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, PartnerError):
            return partner_unavailable(exc)
        if isinstance(exc, exceptions.Throttled):
            wait = retry_after_seconds(exc.wait)
            body = {"error": f"too many requests: slow down and retry in {wait} s", "retry_after": wait}
            return Response(body, status=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(wait)})
        if isinstance(exc, exceptions.ValidationError) and exc.get_codes() == {"body": "too_large"}:
            return Response({"error": _message(exc.detail)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        response = super().handle_exception(exc)
        response.data = {"error": _message(response.data.get("detail", response.data))}
        return response

    def require_consent(self, experiment: Experiment, *, consented: bool | None = None) -> None:
        """403 unless the participant agreed to this experiment's current consent version
        (`consented`: already read with the round, else asked now)."""
        if consented is None:
            consented = has_consented(self.participant_id, experiment)
        if not consented:
            raise exceptions.PermissionDenied(
                f"you have not given consent to the study {experiment.slug!r} (consent version "
                f"{experiment.consent_version}): start from its page and give consent first"
            )

    def valid(self, serializer_class: type, request: Request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def own_round(self, client_round_id: uuid.UUID) -> Round:
        """The participant's round with this client id (anybody else's answers 404), if consent holds.

        One query: the round, what the game reads with it, and whether consent holds.
        """
        round_ = get_object_or_404(
            Round.objects.for_play().with_consent(),
            participant_id=self.participant_id,
            client_round_id=client_round_id,
        )
        self.require_consent(round_.experiment, consented=round_.consented)
        return round_


class SessionStartApi(GameApi):
    def post(self, request: Request, slug: str) -> Response:
        try:
            experiment, pilot = playable_experiment(request, slug)
        except StudyNotOpen as exc:
            raise Conflict(str(exc), finished=True) from exc
        self.require_consent(experiment)
        device = self.valid(SessionStartSerializer, request)
        session, new = open_session(
            participant=self.participant, experiment=experiment, device=device,
            address_hash=address_hash(request.META.get("REMOTE_ADDR", "")),
            user_agent=request.META.get("HTTP_USER_AGENT", ""), pilot=pilot,
        )  # fmt: skip
        body = {"session_id": session.pk, "rounds_done": 0 if new else rounds_done(session, experiment),
                "rounds_total": experiment.rounds_per_session}  # fmt: skip
        return Response(body, status=status.HTTP_201_CREATED)


class RoundStartApi(GameApi):
    rate_scope = "rounds"

    def post(self, request: Request) -> Response:
        data = self.valid(RoundStartSerializer, request)
        session = get_object_or_404(
            PlaySession.objects.select_related("experiment").with_consent(),
            pk=data["session_id"],
            participant_id=self.participant_id,
        )
        self.require_consent(session.experiment, consented=session.consented)
        started = start_round(session=session, client_round_id=data["client_round_id"])
        return Response(round_state(started.round, started.counts),
                        status=status.HTTP_201_CREATED if started.created else status.HTTP_200_OK)  # fmt: skip


class RoundDetailApi(GameApi):
    def get(self, request: Request, client_round_id: uuid.UUID) -> Response:
        return Response(round_state(self.own_round(client_round_id)))


class ClicksUploadApi(GameApi):
    rate_scope = "clicks"

    def post(self, request: Request, client_round_id: uuid.UUID) -> Response:
        round_ = self.own_round(client_round_id)
        data = self.valid(ClicksUploadSerializer, request)
        next_seq, _ = store_clicks(round_=round_, start_seq=data["start_seq"], clicks=data["clicks"])
        return Response({"stored": next_seq, "next_seq": next_seq})


class GuessApi(GameApi):
    rate_scope = "guesses"

    def post(self, request: Request, client_round_id: uuid.UUID) -> Response:
        round_ = self.own_round(client_round_id)
        data = self.valid(GuessRequestSerializer, request)
        stored = None
        if "clicks" in data:  # stored (and committed) before the partner is asked, whatever it answers
            round_.bubble_count, stored = store_clicks(
                round_=round_, start_seq=data["start_seq"], clicks=data["clicks"], read_back=True
            )
        try:
            guess = live_guess(round_=round_, bubble_count=data["bubble_count"], stored=stored)
        except PartnerError as exc:  # the page learns what was stored even without a guess
            return partner_unavailable(exc, next_seq=round_.bubble_count)
        return Response({**guess.__dict__, "next_seq": round_.bubble_count})


class RoundSubmitApi(GameApi):
    def post(self, request: Request, client_round_id: uuid.UUID) -> Response:
        round_ = self.own_round(client_round_id)
        data = self.valid(SubmitSerializer, request)
        submitted, counts = submit_round(round_=round_, claimed_outcome=data["outcome"],
                                         bubble_count=data["bubble_count"])  # fmt: skip
        return Response(round_state(submitted, counts))


class SummaryApi(GameApi):
    def get(self, request: Request, slug: str) -> Response:
        experiment = get_object_or_404(Experiment, slug=slug)
        if experiment.status == Experiment.Status.DRAFT and not is_piloting(request, experiment):
            raise Http404("no such study")
        self.require_consent(experiment)
        return Response(summary(participant=self.participant, experiment=experiment))
