"""Top-level URL configuration."""

from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from maps.urls import api_urlpatterns

# A database outage raised in middleware is a 503 with Retry-After, anything else a plain page.
handler500 = "clickme_site.errors.server_error"

admin.site.site_header = "ClickMe administration"
admin.site.site_title = "ClickMe"

urlpatterns = [
    path("", include("games.urls")),
    path("", include("maps.urls")),
    # The OpenAPI schema of the researcher API only: the game's API is for the browser, not for clients.
    path("api/schema/", SpectacularAPIView.as_view(patterns=api_urlpatterns), name="api-schema"),
    path("admin/", admin.site.urls),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
