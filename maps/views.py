"""The researcher dashboard: experiments, collection progress, the map gallery, reliability, exports."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from games.models import Image
from maps import dashboard
from maps.export_jobs import FORMATS
from maps.permissions import visible_experiment, visible_experiments

FORMAT_LABELS = {
    "clicks_csv": "Clicks (CSV)",
    "clicks_parquet": "Clicks (Parquet)",
    "points_coco": "Points (COCO JSON)",
    "maps_npz": "Maps (NumPy .npz)",
    "maps_hdf5": "Maps (HDF5, lab layout)",
    "overlays_png": "Overlays (PNG zip)",
}
GALLERY_PAGE = 24  # tiles per gallery page: a few screens of 256 px images
RECENT_EXPORTS = 10


@require_GET
@login_required(login_url="maps:login")
def experiment_list(request: HttpRequest) -> HttpResponse:
    """The experiments the researcher may see, with their size and activity."""
    experiments = dashboard.experiment_list(visible_experiments(request.user))
    return render(request, "maps/experiment_list.html", {"experiments": experiments})


@require_GET
@login_required(login_url="maps:login")
def experiment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One experiment: progress charts, the gallery of maps, reliability, and exports with live progress."""
    experiment = visible_experiment(request.user, slug)
    context = {
        "experiment": experiment,
        "progress": dashboard.image_progress(experiment),
        "rounds_chart": dashboard.rounds_per_day(experiment),
        "participants_chart": dashboard.active_participants_per_day(experiment),
        "reliability": dashboard.reliability_summary(experiment),
        "gallery": Paginator(dashboard.gallery_images(experiment), GALLERY_PAGE).get_page(request.GET.get("page")),
        "exports": experiment.exports.select_related("created_by")[:RECENT_EXPORTS],
        "formats": [(name, FORMAT_LABELS.get(name, name)) for name in FORMATS if name != "manifest"],
        "config": {"exports_url": reverse("maps:api-exports", args=[slug]), "poll_ms": 1000},
    }
    return render(request, "maps/experiment_detail.html", context)


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
