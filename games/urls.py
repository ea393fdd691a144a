from __future__ import annotations

from django.urls import path

from games import api, views

app_name = "games"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("images/<int:image_id>.png", views.image_crop, name="image"),
    path("play/<slug:slug>/", views.entry, name="entry"),
    path("play/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("play/<slug:slug>/game/", views.play, name="play"),
    path("play/<slug:slug>/results/", views.results, name="results"),
    path("api/play/<slug:slug>/sessions/", api.SessionStartApi.as_view(), name="api-session"),
    path("api/play/<slug:slug>/summary/", api.SummaryApi.as_view(), name="api-summary"),
    path("api/rounds/", api.RoundStartApi.as_view(), name="api-rounds"),
    path("api/rounds/<uuid:client_round_id>/", api.RoundDetailApi.as_view(), name="api-round"),
    path("api/rounds/<uuid:client_round_id>/image.png", views.round_image, name="round-image"),
    path("api/rounds/<uuid:client_round_id>/clicks/", api.ClicksUploadApi.as_view(), name="api-clicks"),
    path("api/rounds/<uuid:client_round_id>/guess/", api.GuessApi.as_view(), name="api-guess"),
    path("api/rounds/<uuid:client_round_id>/submit/", api.RoundSubmitApi.as_view(), name="api-submit"),
]
