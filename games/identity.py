"""Who is playing: the signed participant cookie, and DRF authentication that reads it."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.http import HttpRequest, HttpResponse
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from games.models import Participant

COOKIE = "clickme_participant"
COOKIE_SALT = "games.participant"
COOKIE_AGE = 365 * 24 * 3600  # a year: players come back to their pseudonym and high score


def participant_id_from(request: HttpRequest) -> int | None:
    """The participant id the request's signed cookie vouches for, if it is valid (no query)."""
    try:
        value = request.get_signed_cookie(COOKIE, salt=COOKIE_SALT, max_age=COOKIE_AGE)
    except (KeyError, signing.BadSignature):
        return None
    try:
        return int(value)
    except ValueError:  # signed by us, so never in practice; a bad value is just no participant
        return None


def participant_from(request: HttpRequest) -> Participant | None:
    """The participant named by the request's signed cookie, if it is valid and still exists."""
    participant_id = participant_id_from(request)
    return None if participant_id is None else Participant.objects.filter(pk=participant_id).first()


@dataclass(frozen=True)
class SignedParticipant:
    """`request.auth` of the game API: who the signed cookie says is playing.

    Only the id: most game calls need no more than it (the round is looked up by participant
    and id), so no call pays a query to read a row it does not use (docs/load-testing.md).
    """

    pk: int


def remember(response: HttpResponse, participant: Participant, *, secure: bool) -> None:
    """Set the long-lived signed cookie that identifies the participant."""
    response.set_signed_cookie(
        COOKIE, str(participant.pk), salt=COOKIE_SALT, max_age=COOKIE_AGE, httponly=True, samesite="Lax",
        secure=secure,
    )  # fmt: skip


class ParticipantAuthentication(authentication.SessionAuthentication):
    """Authenticate game API calls by the participant cookie, with Django's CSRF check.

    `request.user` stays anonymous; `request.auth` is the SignedParticipant. CSRF is enforced for
    every unsafe method, because the cookie alone would let another site post as the player.
    """

    def authenticate(self, request: Request) -> tuple[object, SignedParticipant] | None:
        participant_id = participant_id_from(request._request)
        if participant_id is None:
            return None
        self.enforce_csrf(request)
        return AnonymousUser(), SignedParticipant(participant_id)


def require_participant(request: Request) -> int:
    """The authenticated participant's id, or a 403 that says how to become one."""
    if not isinstance(request.auth, SignedParticipant):
        raise exceptions.NotAuthenticated("start from the study's page and give consent first")
    return request.auth.pk
