"""Server-rendered pages of the game: landing, consent, instructions, play, results."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods

from games.access import StudyNotOpen, is_piloting, playable_experiment
from games.admission import admission_wait
from games.identity import participant_from, remember
from games.models import Experiment, Image, Round
from games.partner import evolution_status
from games.services.moderation import can_moderate
from games.services.participants import (
    ConsentRequired,
    PanelEntryRefused,
    check_panel_entry,
    consent,
    has_consented,
    is_mturk_preview,
    is_other_panel_participant,
    panel_identity,
)
from games.services.summary import summary


def _recruitment_key(experiment: Experiment) -> str:
    return f"recruitment:{experiment.pk}"  # panel parameters wait in the session until consent


def _not_open(request: HttpRequest, experiment_title: str, message: str, status: int) -> HttpResponse:
    return render(request, "games/not_open.html", {"title": experiment_title, "message": message}, status=status)


def _playable(request: HttpRequest, slug: str) -> tuple[Experiment, bool] | HttpResponse:
    try:
        return playable_experiment(request, slug)
    except StudyNotOpen as exc:
        return _not_open(request, Experiment.objects.get(slug=slug).title, str(exc), 200)


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """The front page: what ClickMe is, and the open studies (panel studies are reached from their panel)."""
    experiments = Experiment.objects.filter(
        status=Experiment.Status.LIVE, recruitment=Experiment.Recruitment.OPEN
    ).select_related("image_set")
    return render(request, "games/landing.html", {"experiments": experiments})


@require_http_methods(["GET", "POST"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """A study's entry: keep panel parameters, ask for consent, then go to the instructions."""
    playable = _playable(request, slug)
    if isinstance(playable, HttpResponse):
        return playable
    experiment, pilot = playable
    participant = participant_from(request)
    key = _recruitment_key(experiment)
    if request.method == "GET":
        if is_mturk_preview(request.GET, experiment):
            return render(request, "games/consent.html", {"experiment": experiment, "mturk_preview": True})
        identity = panel_identity(request.GET, experiment)
        if identity:
            request.session[key] = identity
        try:
            check_panel_entry(request.session.get(key, {}), experiment, pilot=pilot)
        except PanelEntryRefused as exc:
            return _not_open(request, experiment.title, str(exc), 403)
        if has_consented(participant, experiment) and not is_other_panel_participant(participant, identity):
            return redirect("games:instructions", slug=slug)
        wait = admission_wait()  # a new arrival: the door may be full this minute; players already in never wait
        if wait is not None:
            response = render(request, "games/busy.html", {"experiment": experiment, "retry_after": wait}, status=503)
            response["Retry-After"] = str(wait)
            return response
        return render(request, "games/consent.html", {"experiment": experiment, "pilot": pilot})
    identity = request.session.get(key, {})
    try:
        check_panel_entry(identity, experiment, pilot=pilot)
        participant = consent(
            experiment=experiment, participant=participant, identity=identity,
            age_confirmed=request.POST.get("age_confirmed") == "on", agreed=request.POST.get("consent") == "on",
        )  # fmt: skip
    except PanelEntryRefused as exc:
        return _not_open(request, experiment.title, str(exc), 403)
    except ConsentRequired as exc:
        context = {"experiment": experiment, "pilot": pilot, "error": str(exc)}
        return render(request, "games/consent.html", context, status=400)
    response = redirect("games:instructions", slug=slug)
    remember(response, participant, secure=request.is_secure())
    return response


@require_GET
def instructions(request: HttpRequest, slug: str) -> HttpResponse:
    """How to play."""
    playable = _playable(request, slug)
    if isinstance(playable, HttpResponse):
        return playable
    experiment, pilot = playable
    if not has_consented(participant_from(request), experiment):
        return redirect("games:entry", slug=slug)
    return render(request, "games/instructions.html", {"experiment": experiment, "pilot": pilot})


@require_GET
def play(request: HttpRequest, slug: str) -> HttpResponse:
    """The game canvas, with its initial data handed to JavaScript through json_script."""
    playable = _playable(request, slug)
    if isinstance(playable, HttpResponse):
        return playable
    experiment, pilot = playable
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
    # The generation of the partner and how soon it evolves (docs/evolution.md), as the original ClickMe.ai showed.
    context = {"experiment": experiment, "config": config, "pilot": pilot, "evolution": evolution_status(experiment)}
    return render(request, "games/play.html", context)


@require_GET
def results(request: HttpRequest, slug: str) -> HttpResponse:
    """Score, this study's leaderboard and, once the work is done, the completion code or redirect."""
    experiment = get_object_or_404(Experiment, slug=slug)
    if experiment.status == Experiment.Status.DRAFT and not is_piloting(request, experiment):
        raise Http404("no such study")
    participant = participant_from(request)
    if participant is None or not has_consented(participant, experiment):
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
@login_required(login_url="admin:login")
@cache_control(private=True, max_age=3600)
def image_crop(request: HttpRequest, image_id: int) -> FileResponse:
    """The stored 256×256 crop of an image (the admin's thumbnails and replays).

    Only for those who may see an experiment that shows it (`Experiment.objects.visible_to`), who
    uploaded its set, or who moderate (they review every study's rounds); anyone else gets 404,
    so that neither the image nor its existence leaks.
    """
    images = Image.objects.all() if can_moderate(request.user) else Image.objects.visible_to(request.user)
    image = get_object_or_404(images, pk=image_id)
    if not image.crop:
        raise Http404("image has no stored crop")
    return FileResponse(image.crop.open("rb"), content_type="image/png")
