"""Top-level URL configuration."""

from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView

from maps.urls import api_urlpatterns

# A database outage raised in middleware is a 503 with Retry-After, anything else a plain page.
handler500 = "clickme_site.errors.server_error"

admin.site.site_header = "ClickMe administration"
admin.site.site_title = "ClickMe"

urlpatterns = [
    path("", include("games.urls")),
    path("", include("maps.urls")),
    # The partner versions' researcher API (docs/evolution.md); not yet described in the OpenAPI schema.
    path("", include("evolution.urls")),
    # The OpenAPI schema of the researcher API only: the game's API is for the browser, not for clients.
    path("api/schema/", SpectacularAPIView.as_view(patterns=api_urlpatterns), name="api-schema"),
    path("admin/", admin.site.urls),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches: JSON under /api/ (as the APIs' own 404s), the HTML page elsewhere.

    A client of the researcher API reads {"detail"}, the game's browser code {"error"} (docs/game-api.md).
    """
    if request.path.startswith("/api/researcher/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not found"}, status=404)
    return page_not_found(request, exception)


handler404 = not_found
