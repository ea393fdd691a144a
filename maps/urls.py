"""Researcher API (`api/researcher/`) and dashboard (`dashboard/`) routes."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from maps import api, views

app_name = "maps"

# Kept apart so the OpenAPI schema describes exactly these and nothing of the game's API.
api_urlpatterns = [
    path("api/researcher/experiments/", api.ExperimentListApi.as_view(), name="api-experiments"),
    path("api/researcher/experiments/<slug:slug>/", api.ExperimentDetailApi.as_view(), name="api-experiment"),
    path("api/researcher/experiments/<slug:slug>/images/", api.ImageListApi.as_view(), name="api-images"),
    path("api/researcher/experiments/<slug:slug>/images/<int:image_id>/map.png", api.MapPngApi.as_view(),
         name="api-map-png"),
    path("api/researcher/experiments/<slug:slug>/images/<int:image_id>/map.npy", api.MapNpyApi.as_view(),
         name="api-map-npy"),
    path("api/researcher/experiments/<slug:slug>/rounds/", api.RoundListApi.as_view(), name="api-rounds"),
    path("api/researcher/experiments/<slug:slug>/exports/", api.ExportListCreateApi.as_view(), name="api-exports"),
    path("api/researcher/experiments/<slug:slug>/reliability/", api.ReliabilityApi.as_view(), name="api-reliability"),
    path("api/researcher/exports/<int:export_id>/", api.ExportDetailApi.as_view(), name="api-export"),
    path("api/researcher/exports/<int:export_id>/files/<path:name>", api.ExportFileApi.as_view(),
         name="api-export-file"),
]  # fmt: skip

login = auth_views.LoginView.as_view(template_name="maps/login.html", next_page="maps:dashboard")

urlpatterns = [
    *api_urlpatterns,
    path("dashboard/login/", login, name="login"),
    path("dashboard/logout/", auth_views.LogoutView.as_view(next_page="maps:login"), name="logout"),
    path("dashboard/", views.experiment_list, name="dashboard"),
    # Before `dashboard/<slug>/`, whose slugs maps.forms.RESERVED_SLUGS keeps off these names.
    path("dashboard/new/", views.study_create, name="study-create"),
    path("dashboard/image-sets/", views.image_set_list, name="image-sets"),
    path("dashboard/image-sets/new/", views.image_set_upload, name="image-set-upload"),
    path("dashboard/image-sets/<slug:name>/", views.image_set_detail, name="image-set"),
    path("dashboard/<slug:slug>/", views.experiment_detail, name="dashboard-experiment"),
    path("dashboard/<slug:slug>/settings/", views.study_settings, name="study-settings"),
    path("dashboard/<slug:slug>/status/", views.experiment_status, name="study-status"),
    path("dashboard/<slug:slug>/images/<int:image_id>.png", views.image_crop, name="dashboard-image"),
]
