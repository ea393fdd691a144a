"""Who is playing: the signed participant cookie, and DRF authentication that reads it."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.http import HttpRequest, HttpResponse
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from games.models import Participant

COOKIE = "clickme_participant"
COOKIE_SALT = "games.participant"
COOKIE_AGE = 365 * 24 * 3600  # a year: players come back to their pseudonym and high score


def participant_from(request: HttpRequest) -> Participant | None:
    """The participant named by the request's signed cookie, if it is valid."""
    try:
        participant_id = request.get_signed_cookie(COOKIE, salt=COOKIE_SALT, max_age=COOKIE_AGE)
    except (KeyError, signing.BadSignature):
        return None
    return Participant.objects.filter(pk=participant_id).first()


def remember(response: HttpResponse, participant: Participant, *, secure: bool) -> None:
    """Set the long-lived signed cookie that identifies the participant."""
    response.set_signed_cookie(
        COOKIE, str(participant.pk), salt=COOKIE_SALT, max_age=COOKIE_AGE, httponly=True, samesite="Lax",
        secure=secure,
    )  # fmt: skip


class ParticipantAuthentication(authentication.SessionAuthentication):
    """Authenticate game API calls by the participant cookie, with Django's CSRF check.

    `request.user` stays anonymous; the participant is `request.auth`. CSRF is enforced for
    every unsafe method, because the cookie alone would let another site post as the player.
    """

    def authenticate(self, request: Request) -> tuple[object, Participant] | None:
        participant = participant_from(request._request)
        if participant is None:
            return None
        self.enforce_csrf(request)
        return AnonymousUser(), participant


def require_participant(request: Request) -> Participant:
    """The authenticated participant, or a 403 that says how to become one."""
    if not isinstance(request.auth, Participant):
        raise exceptions.NotAuthenticated("start from the study's page and give consent first")
    return request.auth
