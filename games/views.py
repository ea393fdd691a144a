"""Server-rendered pages of the game."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from games.models import Experiment, Image


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """The front page: what ClickMe is, and the experiments open for play."""
    experiments = Experiment.objects.filter(status=Experiment.Status.LIVE).select_related("image_set")
    return render(request, "games/landing.html", {"experiments": experiments})


@require_GET
@staff_member_required
@cache_control(private=True, max_age=3600)
def image_crop(request: HttpRequest, image_id: int) -> FileResponse:
    """The stored 256×256 crop of an image, for the admin and the dashboard.

    Players will reach images through their round, never by id, so that neither the URL nor
    the listing can tell them the class; this view is for staff.
    """
    image = get_object_or_404(Image, pk=image_id)
    if not image.crop:
        raise Http404("image has no stored crop")
    return FileResponse(image.crop.open("rb"), content_type="image/png")
