from __future__ import annotations

from django.urls import path

from games import views

app_name = "games"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("images/<int:image_id>.png", views.image_crop, name="image"),
]
