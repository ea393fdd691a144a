"""The researcher REST API: experiments, images, rounds, maps, exports and reliability.

Design: docs/running-a-study.md, "The researcher API".

Every view resolves its experiment through `visible_experiments`, so another researcher's data
answers 404 (its existence does not leak) and a request without credentials answers 401.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import PurePosixPath

from django.db.models import Count, Prefetch, QuerySet
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from games.models import Experiment, Image, Round
from maps.export_jobs import create_export, export_path, last_successful_export
from maps.export_limits import EXPIRED_NOTE, ExportQuotaExceeded
from maps.models import ClickMap, Export
from maps.permissions import visible_experiment, visible_experiments
from maps.serializers import (
    ExperimentSerializer,
    ExportCreateSerializer,
    ExportSerializer,
    ImageSerializer,
    ReliabilitySerializer,
    RoundSerializer,
)
from maps.services import heatmap_array, npy_bytes, overlay_png


class ExperimentScoped:
    """Mixin for views under `experiments/<slug>/`: the experiment, or 404 for anyone who may not see it."""

    @cached_property
    def experiment(self) -> Experiment:
        return visible_experiment(self.request.user, self.kwargs["slug"])


class VisibleExperiments:
    """Mixin: the experiments the researcher owns or was added to, with their image counts."""

    queryset = Experiment.objects.select_related("owner", "image_set", "partner").order_by("-created_at")
    serializer_class = ExperimentSerializer

    def get_queryset(self) -> QuerySet[Experiment]:
        visible = visible_experiments(self.request.user).values("pk")
        return super().get_queryset().filter(pk__in=visible).annotate(image_count=Count("image_set__images"))


class ExperimentListApi(VisibleExperiments, generics.ListAPIView):
    """The experiments the researcher owns or was added to."""


class ExperimentDetailApi(VisibleExperiments, generics.RetrieveAPIView):
    """One experiment's description and game rules."""

    lookup_field = "slug"


class ImageListApi(ExperimentScoped, generics.ListAPIView):
    """The experiment's images, each with the state of its click map."""

    queryset = Image.objects.select_related("category").order_by("pk")
    serializer_class = ImageSerializer

    def get_queryset(self) -> QuerySet[Image]:
        maps = ClickMap.objects.filter(experiment=self.experiment).select_related("experiment")
        images = super().get_queryset().filter(image_set_id=self.experiment.image_set_id)
        return images.prefetch_related(Prefetch("click_maps", queryset=maps, to_attr="experiment_maps"))


class RoundListApi(ExperimentScoped, generics.ListAPIView):
    """Every round played in the experiment, pseudonymous (no panel id, no address)."""

    queryset = Round.objects.select_related("participant", "image", "partner_version__partner").order_by("pk")
    serializer_class = RoundSerializer

    def get_queryset(self) -> QuerySet[Round]:
        return super().get_queryset().filter(experiment=self.experiment)


class FileApi(APIView):
    """Base of endpoints answering with a file; errors stay JSON whatever the client accepts."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # Without force, a client sending `Accept: image/png` would get 406 instead of the file or a JSON 404.
        return super().perform_content_negotiation(request, force=True)


class MapFileApi(ExperimentScoped, FileApi):
    """Base of the per-image map downloads."""

    def ready_map(self, image_id: int) -> ClickMap:
        """The image's map once enough participants have contributed; 404 until then."""
        click_map = get_object_or_404(ClickMap.objects.select_related("image"), experiment=self.experiment,
                                      image_id=image_id)  # fmt: skip
        if not click_map.is_ready:
            raise Http404("this image's map is not ready yet")
        return click_map


class MapPngApi(MapFileApi):
    """The image with its click map overlaid, as PNG."""

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request: Request, slug: str, image_id: int) -> HttpResponse:
        return HttpResponse(overlay_png(self.ready_map(image_id)), content_type="image/png")


class MapNpyApi(MapFileApi):
    """The click map as a float32 256×256 NumPy array (`numpy.load` reads it)."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, slug: str, image_id: int) -> HttpResponse:
        click_map = self.ready_map(image_id)
        response = HttpResponse(npy_bytes(heatmap_array(click_map)), content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="map-{click_map.image_id}.npy"'
        return response


class ExportQuotaReached(exceptions.APIException):
    """429 with Retry-After (DRF's handler sets it from `wait`) and a body saying which limit and the usage."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "export_quota"

    def __init__(self, refusal: ExportQuotaExceeded) -> None:
        super().__init__(str(refusal))
        self.wait = refusal.retry_after
        # Set after __init__, which would turn the numbers into strings.
        self.detail = {"detail": str(refusal), "retry_after": refusal.retry_after, "quota": refusal.usage.as_dict()}


class ExportListCreateApi(ExperimentScoped, generics.ListAPIView):
    """The experiment's exports (GET), or start a new one (POST, answered 202 while it runs)."""

    queryset = Export.objects.select_related("experiment", "created_by")
    serializer_class = ExportSerializer

    def get_queryset(self) -> QuerySet[Export]:
        return super().get_queryset().filter(experiment=self.experiment)

    @extend_schema(request=ExportCreateSerializer, responses={202: ExportSerializer})
    def post(self, request: Request, slug: str) -> Response:
        payload = ExportCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        since = last_successful_export(experiment=self.experiment) if data["since_last"] else None
        try:
            export = create_export(experiment=self.experiment, user=request.user, formats=data["formats"],
                                   filters=data.get("filters", {}), since=since)  # fmt: skip
        except ExportQuotaExceeded as refusal:
            raise ExportQuotaReached(refusal) from refusal
        except ValueError as exc:  # the service's message names the bad format or filter
            raise exceptions.ValidationError({"detail": str(exc)}) from exc
        return Response(ExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(generics.RetrieveAPIView):
    """One export's status, progress, counts and files: poll it until it succeeds or fails."""

    queryset = Export.objects.select_related("experiment", "created_by")
    serializer_class = ExportSerializer
    lookup_url_kwarg = "export_id"

    def get_queryset(self) -> QuerySet[Export]:
        return super().get_queryset().filter(experiment__in=visible_experiments(self.request.user).values("pk"))


class ExportFileApi(FileApi):
    """Download one file of a finished export, streamed from disk."""

    # Any type: the Content-Type follows the file (text/csv, application/json, application/zip ...).
    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})
    def get(self, request: Request, export_id: int, name: str) -> FileResponse:
        visible = visible_experiments(request.user).values("pk")
        export = get_object_or_404(Export, pk=export_id, experiment__in=visible, status=Export.Status.SUCCEEDED)
        if not export.directory and export.error == EXPIRED_NOTE:
            raise Http404(f"this export's {EXPIRED_NOTE}")
        try:  # export_path knows only the names the export recorded, so no path from the URL reaches the disk
            handle = export_path(export, name).open("rb")
        except FileNotFoundError as exc:
            raise Http404("no such file in this export") from exc
        return FileResponse(handle, as_attachment=True, filename=PurePosixPath(name).name)


class ReliabilityApi(ExperimentScoped, generics.GenericAPIView):
    """The latest split-half ceiling and floor, and each image's split-half values."""

    serializer_class = ReliabilitySerializer

    def get(self, request: Request, slug: str) -> Response:
        report = self.experiment.reliability_reports.first()
        images = ClickMap.objects.filter(experiment=self.experiment).select_related("image").order_by("image_id")
        return Response(self.get_serializer({"report": report, "images": images}).data)
