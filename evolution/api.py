"""The researcher API of the partner's versions (docs/evolution.md, "The API").

Under `api/researcher/experiments/<slug>/`: any researcher who may see the experiment
(`Experiment.objects.visible_to`) reads its partner's versions, decisions and generations; its owner
(or a superuser) registers, promotes and rolls back. Anyone else gets 404, as in the rest of the API.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evolution.models import Generation
from evolution.serializers import (
    DecisionSerializer,
    GenerationSerializer,
    PartnerVersionCreateSerializer,
    PartnerVersionSerializer,
    ReasonSerializer,
)
from evolution.services import maps_until_next
from games.models import Experiment, PartnerModelVersion, PromotionDecision
from games.services import partners
from maps.permissions import changeable_experiment, visible_experiment


def _refusal(error: Exception) -> exceptions.APIException:
    if isinstance(error, partners.ActivationFailed):
        unavailable = exceptions.APIException(str(error))
        unavailable.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return unavailable
    return exceptions.ValidationError({"detail": str(error)})


def _version(experiment: Experiment, version: str | None) -> PartnerModelVersion | None:
    if version is None:
        return None
    return get_object_or_404(PartnerModelVersion, partner_id=experiment.partner_id, version=version)


class PartnerVersionsApi(APIView):
    """The experiment's partner: its versions with their lineage and numbers, the gate's decisions, the generations."""

    @extend_schema(operation_id="partner_versions_list", responses=PartnerVersionSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        experiment = visible_experiment(request.user, slug)
        versions = PartnerModelVersion.objects.filter(partner_id=experiment.partner_id).select_related(
            "partner", "parent"
        )
        decisions = PromotionDecision.objects.filter(experiment=experiment).select_related("candidate", "live", "actor")
        generations = Generation.objects.filter(experiment=experiment).select_related("parent", "candidate")
        return Response({
            "partner": experiment.partner.name,
            "evolve_every_maps": experiment.evolve_every_maps,
            "maps_until_next": maps_until_next(experiment),
            "versions": PartnerVersionSerializer(versions.order_by("generation", "created_at"), many=True).data,
            "decisions": DecisionSerializer(decisions[:200], many=True).data,
            "generations": GenerationSerializer(generations.order_by("number"), many=True).data,
        })  # fmt: skip

    @extend_schema(operation_id="partner_versions_register", request=PartnerVersionCreateSerializer,
                   responses={201: PartnerVersionSerializer})  # fmt: skip
    def post(self, request: Request, slug: str) -> Response:
        experiment = changeable_experiment(request.user, slug)
        payload = PartnerVersionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        parent = _version(experiment, data.pop("parent"))
        try:
            version = partners.register_version(partner=experiment.partner, parent=parent, user=request.user, **data)
        except partners.PartnerVersionInvalid as error:
            raise _refusal(error) from error
        return Response(PartnerVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class PromoteApi(APIView):
    """Send a version live: `gate` through the experiment's promotion gate, `promote` by hand with a reason."""

    @extend_schema(operation_id="partner_version_gate_or_promote", request=ReasonSerializer,
                   responses=DecisionSerializer)  # fmt: skip
    def post(self, request: Request, slug: str, version: str, action: str) -> Response:
        if action not in ("gate", "promote"):
            raise Http404("no such action: gate or promote")
        experiment = changeable_experiment(request.user, slug)
        candidate = _version(experiment, version)
        try:
            if action == "gate":
                decision = partners.decide(experiment=experiment, candidate=candidate)
            else:
                payload = ReasonSerializer(data=request.data)
                payload.is_valid(raise_exception=True)
                decision = partners.promote(version=candidate, experiment=experiment, actor=request.user,
                                            reason=payload.validated_data["reason"])  # fmt: skip
        except (partners.PartnerVersionInvalid, partners.ActivationFailed) as error:
            raise _refusal(error) from error
        return Response(DecisionSerializer(decision).data)


class RollBackApi(APIView):
    """Send the version live before (or `to`) live again, with a reason (in the audit log)."""

    @extend_schema(operation_id="partner_roll_back", request=ReasonSerializer, responses=DecisionSerializer)
    def post(self, request: Request, slug: str) -> Response:
        experiment = changeable_experiment(request.user, slug)
        payload = ReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        to = _version(experiment, payload.validated_data["to"])
        try:
            decision = partners.roll_back(experiment=experiment, actor=request.user, to=to,
                                          reason=payload.validated_data["reason"])  # fmt: skip
        except (partners.PartnerVersionInvalid, partners.ActivationFailed) as error:
            raise _refusal(error) from error
        return Response(DecisionSerializer(decision).data)
