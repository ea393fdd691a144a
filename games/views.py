"""Server-rendered pages of the game: landing, consent, instructions, play, results."""

from __future__ import annotations

import uuid

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods

from games.identity import participant_from, remember
from games.models import Experiment, Image, Round
from games.services.participants import ConsentRequired, consent, has_consented, panel_identity
from games.services.summary import summary

RECRUITMENT_KEY = "recruitment"  # panel parameters wait in the session until consent


def _live(slug: str) -> Experiment:
    return get_object_or_404(Experiment, slug=slug, status=Experiment.Status.LIVE)


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """The front page: what ClickMe is, and the experiments open for play."""
    experiments = Experiment.objects.filter(status=Experiment.Status.LIVE).select_related("image_set")
    return render(request, "games/landing.html", {"experiments": experiments})


@require_http_methods(["GET", "POST"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """A study's entry: keep panel parameters, ask for consent, then go to the instructions."""
    experiment = _live(slug)
    participant = participant_from(request)
    if request.method == "GET":
        identity = panel_identity(request.GET, experiment)
        if identity:
            request.session[RECRUITMENT_KEY] = identity
        new_panel_identity = identity and participant and identity.get("prolific_pid", "") != participant.prolific_pid
        if has_consented(participant, experiment) and not new_panel_identity:
            return redirect("games:instructions", slug=slug)
        return render(request, "games/consent.html", {"experiment": experiment})
    try:
        participant = consent(
            experiment=experiment, participant=participant, identity=request.session.get(RECRUITMENT_KEY, {}),
            age_confirmed=request.POST.get("age_confirmed") == "on", agreed=request.POST.get("consent") == "on",
        )  # fmt: skip
    except ConsentRequired as exc:
        return render(request, "games/consent.html", {"experiment": experiment, "error": str(exc)}, status=400)
    response = redirect("games:instructions", slug=slug)
    remember(response, participant, secure=request.is_secure())
    return response


@require_GET
def instructions(request: HttpRequest, slug: str) -> HttpResponse:
    """How to play."""
    experiment = _live(slug)
    if not has_consented(participant_from(request), experiment):
        return redirect("games:entry", slug=slug)
    return render(request, "games/instructions.html", {"experiment": experiment})


@require_GET
def play(request: HttpRequest, slug: str) -> HttpResponse:
    """The game canvas, with its initial data handed to JavaScript through json_script."""
    experiment = _live(slug)
    participant = participant_from(request)
    if not has_consented(participant, experiment):
        return redirect("games:entry", slug=slug)
    config = {
        "experiment": experiment.slug,
        "username": participant.username,
        "rounds_total": experiment.rounds_per_session,
        "settings": experiment.game_settings(),
        "urls": {
            "session": reverse("games:api-session", args=[slug]),
            "rounds": reverse("games:api-rounds"),
            "summary": reverse("games:api-summary", args=[slug]),
            "results": reverse("games:results", args=[slug]),
        },
    }
    return render(request, "games/play.html", {"experiment": experiment, "config": config})


@require_GET
def results(request: HttpRequest, slug: str) -> HttpResponse:
    """Score, leaderboard and, once the rounds are done, the completion code or redirect."""
    experiment = get_object_or_404(Experiment, slug=slug)
    participant = participant_from(request)
    if participant is None:
        return redirect("games:entry", slug=slug)
    context = {"experiment": experiment, "summary": summary(participant=participant, experiment=experiment)}
    return render(request, "games/results.html", context)


@require_GET
@cache_control(private=True, max_age=3600)
def round_image(request: HttpRequest, client_round_id: uuid.UUID) -> FileResponse:
    """The image of one of the participant's rounds; the URL tells nothing about its class."""
    participant = participant_from(request)
    if participant is None:
        raise Http404("no such round")
    round_ = get_object_or_404(Round.objects.select_related("image"), participant=participant,
                               client_round_id=client_round_id)  # fmt: skip
    return FileResponse(round_.image.crop.open("rb"), content_type="image/png")


@require_GET
@staff_member_required
@cache_control(private=True, max_age=3600)
def image_crop(request: HttpRequest, image_id: int) -> FileResponse:
    """The stored 256×256 crop of an image, for the admin and the dashboard (staff only)."""
    image = get_object_or_404(Image, pk=image_id)
    if not image.crop:
        raise Http404("image has no stored crop")
    return FileResponse(image.crop.open("rb"), content_type="image/png")
