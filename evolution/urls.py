"""The partner versions' routes of the researcher API (`api/researcher/experiments/<slug>/partner/...`)."""

from __future__ import annotations

from django.urls import path

from evolution import api

app_name = "evolution"

api_urlpatterns = [
    path("api/researcher/experiments/<slug:slug>/partner/versions/", api.PartnerVersionsApi.as_view(),
         name="api-partner-versions"),
    path("api/researcher/experiments/<slug:slug>/partner/versions/<str:version>/<str:action>/",
         api.PromoteApi.as_view(), name="api-partner-promote"),
    path("api/researcher/experiments/<slug:slug>/partner/roll-back/", api.RollBackApi.as_view(),
         name="api-partner-roll-back"),
]  # fmt: skip
urlpatterns = api_urlpatterns
