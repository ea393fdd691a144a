"""The researcher dashboard: studies (create, set up, pilot, go live), image-set uploads, collection
progress, the map gallery, reliability and exports.

Views only read the request and render: rules live in games.services.studies (status and go-live
checks), games.services.image_uploads (zips) and maps.forms (field validation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from games.models import Experiment, Image
from games.services.image_uploads import UploadRejected, create_image_set
from games.services.studies import (
    StudyRefused,
    can_change,
    consents_given,
    go_live_problems,
    is_researcher,
    set_status,
)
from maps import dashboard
from maps.export_limits import quota_usage
from maps.exports import EXPORT_FORMATS
from maps.forms import ImageSetUploadForm, StatusForm, StudyForm
from maps.permissions import changeable_experiment, own_image_sets, visible_experiment, visible_experiments

GALLERY_PAGE = 24  # tiles per gallery page: a few screens of 256 px images
RECENT_EXPORTS = 10


def forbidden(request: HttpRequest) -> HttpResponse:
    """The 403 of a signed-in user who is no researcher: says so, and how to become one."""
    return render(request, "maps/forbidden.html", status=403)


def researcher_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in (else to the login page) and a researcher or superuser (else a 403 that says why)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not is_researcher(request.user):
            return forbidden(request)
        return view(request, *args, **kwargs)

    return login_required(wrapped, login_url="maps:login")


@require_GET
@login_required(login_url="maps:login")
def experiment_list(request: HttpRequest) -> HttpResponse:
    """The experiments the researcher may see, with their size and activity."""
    researcher = is_researcher(request.user)
    visible = visible_experiments(request.user)
    if not researcher and not visible.exists():
        return forbidden(request)  # someone listed on a study may look at it without the role
    context = {"experiments": dashboard.experiment_list(visible), "is_researcher": researcher}
    return render(request, "maps/experiment_list.html", context)


@require_GET
@login_required(login_url="maps:login")
def experiment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One experiment: progress charts, the gallery of maps, reliability, and exports with live progress."""
    experiment = visible_experiment(request.user, slug)
    return render(request, "maps/experiment_detail.html", _detail_context(request, experiment))


def _detail_context(request: HttpRequest, experiment: Experiment, problems: list[str] | None = None) -> dict:
    slug = experiment.slug
    context = {
        "experiment": experiment,
        "run": _run_panel(request, experiment, problems),
        "progress": dashboard.image_progress(experiment),
        "rounds_chart": dashboard.rounds_per_day(experiment),
        "participants_chart": dashboard.active_participants_per_day(experiment),
        "reliability": dashboard.reliability_summary(experiment),
        "partner": dashboard.partner_generations(experiment),
        "gallery": Paginator(dashboard.gallery_images(experiment), GALLERY_PAGE).get_page(request.GET.get("page")),
        "exports": experiment.exports.select_related("created_by")[:RECENT_EXPORTS],
        "formats": [(fmt.name, fmt.label, fmt.ticked) for fmt in EXPORT_FORMATS],
        "quota": quota_usage(request.user),
        "retention_days": settings.EXPORT_RETENTION_DAYS,
        "config": {"exports_url": reverse("maps:api-exports", args=[slug]), "poll_ms": 1000},
    }
    return context


def _run_panel(request: HttpRequest, experiment: Experiment, problems: list[str] | None) -> dict:
    """The study's status card: pilot link, go-live checks and the buttons its owner may press."""
    changeable = can_change(experiment, request.user)
    Status = Experiment.Status
    panel = {"can_change": changeable, "refused": problems or []}
    if not changeable:
        return panel
    pilot = request.build_absolute_uri(reverse("games:entry", args=[experiment.slug]))
    panel["pilot_url"] = f"{pilot}?pilot={experiment.pilot_token}"
    if experiment.status in (Status.DRAFT, Status.PAUSED) and problems is None:
        panel["problems"] = go_live_problems(experiment)  # asks the model server: only where Go live is offered
        panel["checked"] = True
    panel["actions"] = {
        Status.DRAFT: [(Status.LIVE, "Go live")],
        Status.LIVE: [(Status.PAUSED, "Pause"), (Status.CLOSED, "Close")],
        Status.PAUSED: [(Status.LIVE, "Resume (go live)"), (Status.CLOSED, "Close")],
    }.get(experiment.status, [])
    return panel


@require_POST
@researcher_required
def experiment_status(request: HttpRequest, slug: str) -> HttpResponse:
    """Go live, pause, resume or close; a refusal shows the study's page again with the reasons."""
    experiment = changeable_experiment(request.user, slug)
    form = StatusForm(request.POST)
    if not form.is_valid():
        problems = [f"Unknown status {request.POST.get('status')!r}."]
    else:
        try:
            set_status(experiment, form.cleaned_data["status"], by=request.user)
        except StudyRefused as refusal:
            problems = refusal.problems
        else:
            messages.success(request, f"{experiment.title} is now {experiment.get_status_display()}.")
            return redirect("maps:dashboard-experiment", slug=slug)
    context = _detail_context(request, experiment, problems)
    return render(request, "maps/experiment_detail.html", context, status=400)


@require_http_methods(["GET", "POST"])
@researcher_required
def study_create(request: HttpRequest) -> HttpResponse:
    """A new study, as a draft owned by whoever creates it."""
    form = StudyForm(request.POST or None, user=request.user, instance=Experiment(owner=request.user))
    if request.method == "POST" and form.is_valid():
        experiment = form.save()
        messages.success(request, f"Study {experiment.title} created as a draft: pilot it, then go live.")
        return redirect("maps:dashboard-experiment", slug=experiment.slug)
    has_sets = own_image_sets(request.user).exists()
    return render(request, "maps/study_form.html", {"form": form, "has_image_sets": has_sets},
                  status=400 if form.errors else 200)  # fmt: skip


@require_http_methods(["GET", "POST"])
@researcher_required
def study_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """Change a study's settings (its owner or a superuser only)."""
    experiment = changeable_experiment(request.user, slug)
    form = StudyForm(request.POST or None, user=request.user, instance=experiment)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("maps:dashboard-experiment", slug=slug)
    context = {"form": form, "experiment": experiment, "consents": consents_given(experiment), "has_image_sets": True}
    return render(request, "maps/study_form.html", context, status=400 if form.errors else 200)


@require_GET
@researcher_required
def image_set_list(request: HttpRequest) -> HttpResponse:
    """The image sets this researcher uploaded, with their sizes."""
    sets = own_image_sets(request.user).annotate(image_count=Count("images")).order_by("-created_at")
    return render(request, "maps/image_set_list.html", {"image_sets": sets})


@require_GET
@researcher_required
def image_set_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One of this researcher's image sets: its classes and how many images each has."""
    image_set = get_object_or_404(own_image_sets(request.user), name=name)
    classes = image_set.images.values("category__name").annotate(count=Count("pk")).order_by("category__name")
    context = {"image_set": image_set, "classes": classes, "active": image_set.images.filter(
        state=Image.State.ACTIVE).count()}  # fmt: skip
    return render(request, "maps/image_set_detail.html", context)


@require_http_methods(["GET", "POST"])
@researcher_required
def image_set_upload(request: HttpRequest) -> HttpResponse:
    """Upload a zip of class folders as a new image set: all of it, or nothing and every reason why.

    The page's upload.js posts with `Accept: application/json` to show a progress bar and gets
    JSON back; without scripts the same form posts plainly and gets HTML.
    """
    wants_json = request.headers.get("Accept") == "application/json"
    form = ImageSetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = create_image_set(name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                                      owner=request.user, archive=form.cleaned_data["archive"])  # fmt: skip
        except UploadRejected as refusal:
            form.add_error("archive", refusal.problems)
        else:
            note = f" ({len(result.ignored)} files that are not images were skipped)" if result.ignored else ""
            messages.success(request, f"Image set {result.image_set} uploaded: {result.imported} images{note}.")
            url = reverse("maps:image-set", args=[result.image_set.name])
            return JsonResponse({"url": url}) if wants_json else redirect(url)
    if wants_json and request.method == "POST":
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    context = {"form": form, "max_bytes": settings.IMAGE_SET_ZIP_MAX_BYTES}
    return render(request, "maps/image_set_upload.html", context, status=400 if form.errors else 200)


@require_GET
@login_required(login_url="maps:login")
@cache_control(private=True, max_age=3600)
def image_crop(request: HttpRequest, slug: str, image_id: int) -> FileResponse:
    """An image of the experiment, for researchers who may see it (the game's own view is staff-only)."""
    experiment = visible_experiment(request.user, slug)
    image = get_object_or_404(Image, pk=image_id, image_set_id=experiment.image_set_id)
    if not image.crop:
        raise Http404("image has no stored crop")
    return FileResponse(image.crop.open("rb"), content_type="image/png")
