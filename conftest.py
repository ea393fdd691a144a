"""Shared pytest fixtures: the suite runs on the project's own settings, adjusted only here."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _test_settings(settings: pytest.FixtureDef, tmp_path: Path) -> None:
    """Keep files in a temporary folder and let the test client speak plain HTTP."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The hashed-manifest storage needs `collectstatic`; tests render templates without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def admin_client_logged_in(client, admin_user):
    """A test client logged in as a superuser."""
    client.force_login(admin_user)
    return client
