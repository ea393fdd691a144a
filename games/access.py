"""Which study a request may play: live studies for everyone, draft and paused ones from the pilot link.

The preview ("pilot") link is `/play/<slug>/?pilot=<token>` (docs/running-a-study.md). Opening it
marks this browser session as piloting that study; what it plays is stored with
`PlaySession.is_pilot` and kept out of maps and exports.
"""

from __future__ import annotations

import secrets

from django.http import Http404, HttpRequest

from games.models import Experiment

PILOT_PARAMETER = "pilot"
PILOTABLE = (Experiment.Status.DRAFT, Experiment.Status.LIVE, Experiment.Status.PAUSED)


class StudyNotOpen(Exception):
    """The study exists and is public but cannot be played now (paused or closed); says why."""


def _pilot_key(experiment: Experiment) -> str:
    return f"pilot:{experiment.pk}"


def remember_pilot(request: HttpRequest, experiment: Experiment) -> None:
    """Mark this browser session as piloting the experiment if the URL carries its pilot token."""
    token = request.GET.get(PILOT_PARAMETER, "")
    if token and secrets.compare_digest(token, experiment.pilot_token):
        request.session[_pilot_key(experiment)] = True


def is_piloting(request: HttpRequest, experiment: Experiment) -> bool:
    """Whether this browser session opened the experiment's pilot link (and it may still be piloted)."""
    return experiment.status in PILOTABLE and bool(request.session.get(_pilot_key(experiment)))


def playable_experiment(request: HttpRequest, slug: str) -> tuple[Experiment, bool]:
    """The experiment this request may play and whether it plays it as a pilot.

    A draft study is invisible (404) except through its pilot link; a paused or closed one says so.
    """
    experiment = Experiment.objects.filter(slug=slug).select_related("image_set", "partner").first()
    if experiment is None:
        raise Http404("no such study")
    remember_pilot(request, experiment)
    if is_piloting(request, experiment):
        return experiment, True
    if experiment.status == Experiment.Status.LIVE:
        return experiment, False
    if experiment.status == Experiment.Status.DRAFT:
        raise Http404("no such study")
    raise StudyNotOpen(
        "This study is paused for now: please come back later."
        if experiment.status == Experiment.Status.PAUSED
        else "This study has closed. Thank you for your interest."
    )
